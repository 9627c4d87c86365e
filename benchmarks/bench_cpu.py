"""CPU benchmark: tinygrad_attn against PyTorch eager, one process per framework, in one run.

    python benchmarks/bench_cpu.py                 # all cases, 2 threads, markdown table
    python benchmarks/bench_cpu.py --cases A D --rounds 3 --steps 10
    python benchmarks/bench_cpu.py --cases F --nanogpt ~/src/nanoGPT   # F against nanoGPT's own model.py

Cases (training step = forward + backward + AdamW). PyTorch is written as its users write
it: attention through F.scaled_dot_product_attention (benchmarks/torch_reference.py).
  A  causal decoder (models.decoder.GPT), vocab 256, T=128, d=128, 4 heads, 4 layers, batch 32
  B  masked-LM encoder (models.encoder.MaskedLM), same size, no padding
  C  one MultiHeadAttention layer forward+backward (B=32, T=128, d=128, 4 heads)
  D  a chain of 1,000 small elementwise ops forward+backward (per-op overhead)
  E  a GPT written by a user from public nn/F ops (examples/user_gpt.py), A's size,
     against the same code in PyTorch
  F  nanoGPT's CPU recipe (README: char vocabulary, T=64, batch 12, 4 layers, 4 heads,
     d=128, AdamW, clip 1.0): models.decoder.GPT against nanoGPT's model.py when
     --nanogpt points at a checkout of it, else against torch_reference's decoder
  G  E as a user runs it: the worker gets no thread variable (OMP/OPENBLAS/MKL_NUM_THREADS)
     and PyTorch no set_num_threads, so each framework runs with its own defaults
  H  the tiny step: E's model at d=64, 4 heads, 6 layers, T=32, batch 2, one thread, where
     the arithmetic is negligible and the step is the frameworks' per-op host cost

Each (framework, case) runs in a fresh worker process; rounds alternate between the
frameworks (who goes first rotates) so that both see the same machine noise. Reported:
median step time over all rounds; the ratios as the median over rounds of the ratio
within a round (robust to a shared machine slowing down for a minute), with the lowest
and highest round; peak RSS of the worker above its imported libraries; and for the model cases the "matmul floor" of each
framework: the time of the same step's matrix products alone, in NumPy (the BLAS we call, with
the CPU backend's process settings) and in PyTorch (its own). The floor calls each batched
attention product whole, so OpenBLAS splits every small (T, T) product over its threads (E's
six per layer: 6.5 ms in NumPy against 2.6 in PyTorch, measured 2026-12-06); the engine runs
attention's batch items on its own threads with BLAS on one instead. ours/floor and torch/floor divide each step by its own framework's floor;
"rest" is a step minus its floor: the time each framework spends outside its products.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SIZES = dict(vocab=256, d=128, h=4, layers=4, seq_len=128, batch=32)
NANOGPT_SIZES = dict(vocab=85, d=128, h=4, layers=4, seq_len=64, batch=12)
TINY_SIZES = dict(vocab=256, d=64, h=4, layers=6, seq_len=32, batch=2)
CASES = {"A": "gpt", "B": "mlm", "C": "mha", "D": "chain", "E": "user_gpt", "F": "nanogpt",
         "G": "user_gpt_as_run", "H": "tiny"}
MODEL_CASES = ("gpt", "mlm", "mha", "user_gpt", "nanogpt", "user_gpt_as_run", "tiny")
MODEL_OF_CASE = {"user_gpt_as_run": "user_gpt", "tiny": "user_gpt"}  # G and H time E's model
THREADS_OF_CASE = {"tiny": 1, "user_gpt_as_run": None}  # None: the framework's own default


def _sizes(case):
    return {"nanogpt": NANOGPT_SIZES, "tiny": TINY_SIZES}.get(case, SIZES)


def _threads(case, threads):
    return THREADS_OF_CASE.get(case, threads)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def _peak_rss_mb() -> float:
    # VmHWM is this process image's own peak; ru_maxrss would carry over the peak of the
    # parent that forked us (Linux keeps it across exec), which imported PyTorch
    peak = _status_mb("VmHWM")
    return peak if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    return _status_mb("VmRSS")


def _ours(case):
    import tinygrad_attn as tga
    from benchmarks.our_steps import make_chain, make_step
    tga.manual_seed(0)
    if case == "chain":
        return make_chain(1000, 16)
    return make_step(MODEL_OF_CASE.get(case, case), **_sizes(case))


def _torch(case, threads):
    import torch
    if threads is not None:
        torch.set_num_threads(threads)
    from benchmarks.torch_reference import make_chain, make_step, nanogpt_step
    if case == "chain":
        return make_chain(1000, 16)
    if case == "nanogpt" and os.environ.get("NANOGPT_DIR"):
        return nanogpt_step(os.environ["NANOGPT_DIR"], **_sizes(case))
    return make_step(MODEL_OF_CASE.get(case, case), **_sizes(case))


def _floor(case, framework="numpy"):
    """The step's matrix products alone (forward and the two backward products each), in NumPy or PyTorch."""
    import numpy as np
    rng = np.random.default_rng(0)
    B, T, d, h, V, L = (_sizes(case)[k] for k in ("batch", "seq_len", "d", "h", "vocab", "layers"))
    dh = d // h
    per_layer = [((B * T, d), (d, 3 * d)), ((B * h, T, dh), (B * h, dh, T)), ((B * h, T, T), (B * h, T, dh)),
                 ((B * T, d), (d, d)), ((B * T, d), (d, 4 * d)), ((B * T, 4 * d), (4 * d, d))]
    if case == "mha":
        shapes = per_layer[:4]
    else:
        shapes = per_layer * L + [((B * T, d), (d, V))]
    mats = [(rng.standard_normal(a, dtype=np.float32), rng.standard_normal(b, dtype=np.float32)) for a, b in shapes]
    if framework == "torch":
        import torch
        mats = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in mats]

    def step():
        for a, b in mats:
            c = a @ b
            a.swapaxes(-1, -2) @ c  # gradient of b
            c @ b.swapaxes(-1, -2)  # gradient of a
    return step


# warm-up steps before the timed ones, alike for both frameworks: allocators, caches, lazy imports,
# and the CPU backend's first choice of OpenBLAS's spin, made by timing steps 3 to 9 (spin_choice.py)
WARMUP_STEPS = 10


def worker(framework, case, steps, threads):
    """Run in a subprocess: time `steps` steps after a warm-up, print JSON."""
    import numpy  # noqa: F401  (both frameworks load it; count memory from after the imports)
    if framework in ("torch", "torch_floor"):
        import torch  # noqa: F401
    else:
        import tinygrad_attn  # noqa: F401
    base = _current_rss_mb()
    if framework == "ours":
        step = _ours(case)
    elif framework == "torch":
        step = _torch(case, threads)
    elif framework == "torch_floor":
        import torch
        if threads is not None:
            torch.set_num_threads(threads)
        step = _floor(case, "torch")
    else:
        # the NumPy floor under the CPU backend's process settings, as our steps run: without
        # them each fresh product output page-faults in (user GPT's floor: 116-121 against 111 ms)
        from tinygrad_attn.backend import get_backend
        get_backend("cpu")
        step = _floor(case)
    for _ in range(WARMUP_STEPS):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    # peak memory of model, data, activations and optimizer state, above the imported libraries
    record = {"times": times, "peak_rss_mb": _peak_rss_mb() - base}
    if framework == "ours":
        record["spin"] = _spin_chosen()
    print(json.dumps(record))


def _spin_chosen():
    """What the CPU backend's run-time choice of OpenBLAS's spin chose at each trial, or None if it made none."""
    import tinygrad_attn as tga
    spin = tga.get_backend("cpu").spin
    return None if spin is None else ["short" if short else "long" for _, short, _, _ in spin.history]


def _blas_spin() -> str:
    # as a user's script runs: the CPU backend chooses OpenBLAS's spin from the steps' times
    # (backend/spin_choice.py); set TINYGRAD_ATTN_BLAS_SPIN=short|long or OPENBLAS_THREAD_TIMEOUT to fix one
    for var in ("TINYGRAD_ATTN_BLAS_SPIN", "OPENBLAS_THREAD_TIMEOUT"):
        if var in os.environ:
            return f"{var}={os.environ[var]}"
    return "chosen at run time (the backend's default)"


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _run_worker(framework, case, steps, threads):
    threads = _threads(case, threads)
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_VARIABLES})
    out = subprocess.run([sys.executable, __file__, "--worker", framework, case, str(steps), str(threads or 0)],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{framework}/{case} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per framework")
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--nanogpt", help="a checkout of karpathy/nanoGPT: case F's PyTorch side runs its model.py")
    args = p.parse_args(argv)
    if args.nanogpt:
        os.environ["NANOGPT_DIR"] = os.path.abspath(os.path.expanduser(args.nanogpt))
    if importlib.util.find_spec("torch") is not None:  # found, not imported: workers import it
        frameworks = ["ours", "torch"]
    else:
        print("PyTorch is not installed: timing tinygrad_attn alone (pip install torch==2.13.0 for the comparison)")
        frameworks = ["ours"]
    results = {}
    for letter in args.cases:
        case = CASES[letter]
        floors = ["floor", "torch_floor"] if "torch" in frameworks else ["floor"]
        runs = frameworks + (floors if case in MODEL_CASES else [])
        for i in range(args.rounds):
            for fw in runs[i % len(runs):] + runs[:i % len(runs)]:  # who goes first rotates
                r = _run_worker(fw, case, args.steps, args.threads)
                slot = results.setdefault((letter, fw), {"times": [], "rounds": [], "rss": []})
                slot["times"] += r["times"]
                slot["rounds"].append(statistics.median(r["times"]))
                slot["rss"].append(r["peak_rss_mb"])
    print(f"\nmachine: {_cpu_model()} ({os.uname().machine}), {os.cpu_count()} cores, threads={args.threads} "
          f"(G: each framework's default, H: 1), "
          f"OpenBLAS spin: {_blas_spin()}, "
          f"date {time.strftime('%Y-%m-%d')}; case F's PyTorch side: "
          f"{'nanoGPT model.py' if os.environ.get('NANOGPT_DIR') else 'torch_reference decoder'}\n")
    print("| case | tinygrad_attn ms | PyTorch ms | ratio (lowest-highest round) | floor NumPy ms | floor PyTorch ms | ours/floor | torch/floor "
          "| rest ours ms | rest torch ms | rest ratio | peak mem ours MB | peak mem torch MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, digits=1: "-" if v is None else f"{v:.{digits}f}"  # noqa: E731
    for letter in args.cases:
        med = {fw: statistics.median(results[(letter, fw)]["times"]) * 1e3
               for fw in ("ours", "torch", "floor", "torch_floor") if (letter, fw) in results}
        rss = {fw: max(results[(letter, fw)]["rss"]) for fw in ("ours", "torch") if (letter, fw) in results}

        def per_round(a, b, combine):
            """[combine(a's round, b's round)] over the rounds (both ran minutes apart at most, so
            this cancels the slow drifts of a shared machine that pooled medians keep), or None."""
            if (letter, a) not in results or (letter, b) not in results:
                return None
            return [combine(x, y) for x, y in zip(results[(letter, a)]["rounds"], results[(letter, b)]["rounds"])]

        def ratio(a, b):
            r = per_round(a, b, lambda x, y: x / y)
            return None if r is None else statistics.median(r)

        def spread(a, b):  # the lowest and highest within-round ratio: how much one round can be trusted
            r = per_round(a, b, lambda x, y: x / y)
            return "" if r is None else f" ({min(r):.2f}-{max(r):.2f})"

        # per round, the step minus its own framework's products
        rest_ours = per_round("ours", "floor", lambda x, y: x - y)
        rest_torch = per_round("torch", "torch_floor", lambda x, y: x - y)
        rest_ratio = (statistics.median(x / y for x, y in zip(rest_ours, rest_torch))
                      if rest_ours and rest_torch else None)
        rest_ms = lambda r: None if r is None else statistics.median(r) * 1e3  # noqa: E731

        print(f"| {letter} {CASES[letter]} | {fmt(med.get('ours'))} | {fmt(med.get('torch'))} | "
              f"{fmt(ratio('ours', 'torch'), 2)}{spread('ours', 'torch')} | {fmt(med.get('floor'))} | {fmt(med.get('torch_floor'))} | "
              f"{fmt(ratio('ours', 'floor'), 2)} | {fmt(ratio('torch', 'torch_floor'), 2)} | "
              f"{fmt(rest_ms(rest_ours))} | {fmt(rest_ms(rest_torch))} | {fmt(rest_ratio, 2)} | "
              f"{fmt(rss.get('ours'))} | {fmt(rss.get('torch'))} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]}/{k[1]}": v for k, v in results.items()}, f)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) or None)
    else:
        main()
