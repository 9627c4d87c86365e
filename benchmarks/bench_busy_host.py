"""Is the CPU backend's default as fast as the alternatives on a quiet host AND on a busy one?

    python benchmarks/bench_busy_host.py                  # case E, 3 rounds, quiet and 1 hog
    python benchmarks/bench_busy_host.py --cases E B --hogs 0 1 2 --rounds 5
    python benchmarks/bench_busy_host.py --neighbour blas     # neighbours that train too (NumPy products)

The CPU backend chooses OpenBLAS's idle-thread spin at run time (backend/spin_choice.py):
it times a few steps with the short spin (its blocks on our threads too) and a few with
OpenBLAS's own long spin (blocks on one thread), keeps the faster, and tries again now and
then. Each setting runs `bench_cpu.py`'s worker (one fresh process per run, timed after its
warm-up, which holds the first choice) while `--hogs` neighbours keep the cores busy beside
it (`--neighbour spin`: a Python loop; `blas`: 2-thread float32 products of (1024, 512) by
(512, 512) in a loop, as another training job would), rounds alternating the settings:

  default     nothing set: what a user's script gets (the run-time choice)
  short       TINYGRAD_ATTN_BLAS_SPIN=short: the short spin for good
  long        TINYGRAD_ATTN_BLAS_SPIN=long: OpenBLAS's own spin for good, blocks on one thread
  off         TINYGRAD_ATTN_PROCESS_SETTINGS=0: none of the process settings (how a
              script ran before they became the default)

The goal: default within 10% of the better fixed setting (short or long) in every condition.
Reported per condition: the median step of each setting, default's ratio to the better fixed
setting, and what the default chose in each round.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cpu  # noqa: E402

SETTINGS = {"default": {}, "short": {"TINYGRAD_ATTN_BLAS_SPIN": "short"}, "long": {"TINYGRAD_ATTN_BLAS_SPIN": "long"},
            "off": {"TINYGRAD_ATTN_PROCESS_SETTINGS": "0"}}
FIXED = ("short", "long")


def _spin():
    while True:
        pass


def _blas():
    os.environ["OPENBLAS_NUM_THREADS"] = "2"  # read when NumPy loads, below
    import numpy as np
    a, b = np.ones((1024, 512), np.float32), np.ones((512, 512), np.float32)
    while True:
        a @ b


NEIGHBOURS = {"spin": _spin, "blas": _blas}


def _run(setting, case, steps, threads):
    saved = dict(os.environ)
    os.environ.update(SETTINGS[setting])
    try:
        return bench_cpu._run_worker("ours", case, steps, threads)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=["E"], choices=list(bench_cpu.CASES))
    p.add_argument("--hogs", nargs="+", type=int, default=[0, 1], help="CPU-burning neighbours, one condition each")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--neighbour", choices=list(NEIGHBOURS), default="spin", help="what each busy neighbour runs")
    args = p.parse_args(argv)
    names = list(SETTINGS)
    rows = []
    for hogs in args.hogs:
        neighbours = [multiprocessing.get_context("spawn").Process(target=NEIGHBOURS[args.neighbour], daemon=True)
                      for _ in range(hogs)]
        for n in neighbours:
            n.start()
        try:
            for letter in args.cases:
                times, chosen = {s: [] for s in names}, []
                for i in range(args.rounds):
                    for s in names[i % len(names):] + names[:i % len(names)]:  # who goes first rotates
                        result = _run(s, bench_cpu.CASES[letter], args.steps, args.threads)
                        times[s] += result["times"]
                        if s == "default":
                            chosen.append("/".join(result.get("spin") or ["none"]))
                rows.append((hogs, letter, {s: statistics.median(t) * 1e3 for s, t in times.items()}, chosen))
                print(f"{hogs} neighbours, case {letter}: " + ", ".join(f"{s} {v:.1f} ms" for s, v in rows[-1][2].items())
                      + f"; default chose {', '.join(chosen)}", flush=True)  # as it goes: a run cut short keeps what it measured
        finally:
            for n in neighbours:
                n.terminate()
    print(f"\nmachine: {bench_cpu._cpu_model()}, {os.cpu_count()} cores, threads={args.threads}, "
          f"{args.rounds} rounds x {args.steps} steps, neighbours: {args.neighbour}\n")
    print("| neighbours | case | " + " | ".join(f"{s} ms" for s in names) + " | default / better fixed | default chose |")
    print("|---|---|" + "---|" * len(names) + "---|---|")
    for hogs, letter, med, chosen in rows:
        better_fixed = min(med[s] for s in FIXED)
        print(f"| {hogs} | {letter} {bench_cpu.CASES[letter]} | " + " | ".join(f"{med[s]:.1f}" for s in names)
              + f" | {med['default'] / better_fixed:.2f} | {', '.join(chosen)} |")


if __name__ == "__main__":
    main()
