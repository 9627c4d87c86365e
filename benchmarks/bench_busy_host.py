"""Is the CPU backend's default as fast as the alternatives on a quiet host AND on a busy one?

    python benchmarks/bench_busy_host.py                  # case E, 3 rounds, quiet and 1 hog
    python benchmarks/bench_busy_host.py --cases E B --hogs 0 1 2 --rounds 5
    python benchmarks/bench_busy_host.py --neighbour blas     # neighbours that train too (NumPy products)

The CPU backend shortens OpenBLAS's idle-thread spin at first use and deals its kernels'
blocks to as many threads as BLAS uses (backend/cpu_threads.py). A short spin frees the
cores for our threads when the host is quiet; an earlier measurement found it losing when
another process keeps the cores busy. Each setting runs `bench_cpu.py`'s worker (one fresh
process per run) while `--hogs` neighbours keep the cores busy beside it (`--neighbour spin`:
a Python loop; `blas`: 2-thread float32 products of (1024, 512) by (512, 512) in a loop, as
another training job would), rounds alternating the settings:

  default     nothing set: what a user's script gets
  long-spin   OPENBLAS_THREAD_TIMEOUT=28, OpenBLAS's own default, set by the user: the
              backend keeps it and runs its blocks on one thread
  off         TINYGRAD_ATTN_PROCESS_SETTINGS=0: none of the process settings (how a
              script ran before they became the default)

Reported per condition: the median step of each setting and its ratio to the best of the others.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cpu  # noqa: E402

SETTINGS = {"default": {}, "long-spin": {"OPENBLAS_THREAD_TIMEOUT": "28"},
            "off": {"TINYGRAD_ATTN_PROCESS_SETTINGS": "0"}}


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
        return bench_cpu._run_worker("ours", case, steps, threads)["times"]
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
                times = {s: [] for s in names}
                for i in range(args.rounds):
                    for s in names[i % len(names):] + names[:i % len(names)]:  # who goes first rotates
                        times[s] += _run(s, bench_cpu.CASES[letter], args.steps, args.threads)
                rows.append((hogs, letter, {s: statistics.median(t) * 1e3 for s, t in times.items()}))
                print(f"{hogs} neighbours, case {letter}: " + ", ".join(f"{s} {v:.1f} ms" for s, v in rows[-1][2].items()),
                      flush=True)  # as it goes: a run cut short keeps what it measured
        finally:
            for n in neighbours:
                n.terminate()
    print(f"\nmachine: {bench_cpu._cpu_model()}, {os.cpu_count()} cores, threads={args.threads}, "
          f"{args.rounds} rounds x {args.steps} steps, neighbours: {args.neighbour}\n")
    print("| neighbours | case | " + " | ".join(f"{s} ms" for s in names) + " | default / best other |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for hogs, letter, med in rows:
        best_other = min(v for s, v in med.items() if s != "default")
        print(f"| {hogs} | {letter} {bench_cpu.CASES[letter]} | " + " | ".join(f"{med[s]:.1f}" for s in names)
              + f" | {med['default'] / best_other:.2f} |")


if __name__ == "__main__":
    main()
