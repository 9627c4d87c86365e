"""Data-parallel throughput: tinygrad_attn over MPI against PyTorch DDP (gloo), 1 and 2 ranks, in one run.

    python benchmarks/bench_data_parallel.py                       # 5 rounds, 1 thread per rank
    python benchmarks/bench_data_parallel.py --rounds 3 --steps 8 --json out.json

The model is the CLI's `small` GPT (vocab 512, T=64, d=128, 4 heads, 4 layers) at a
global batch of 32 sequences, split over the ranks; AdamW and gradient clipping every
step. Ours runs the library's Trainer with DataParallel (gradients averaged in flat
buckets, overlapped with backward); PyTorch runs the same shape written as its users
write it (nanoGPT style: F.scaled_dot_product_attention, DistributedDataParallel over
gloo). Every configuration is launched with `mpiexec -n N`, each rank with one thread
(OMP/OpenBLAS/MKL_NUM_THREADS=1, torch.set_num_threads(1)); rounds rotate who goes first.

Reported per configuration: median tokens/s over rounds (global tokens / median step
time of rank 0, which waits for the slowest rank at every allreduce); speed-ups as the
median over rounds of the ratio within a round; CPU seconds per step and rank (what
the speed-up would be with a free core per rank: waiting sleeps, it costs no CPU); for ours, the
seconds per step a rank spends blocked in gradient allreduce; for both, the time of one
allreduce of the whole gradient (MPI Allreduce / gloo all_reduce) on 2 ranks. From those
the script fits the step-time model of the README and predicts larger runs.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHAPE = dict(vocab=512, seq_len=64, d=128, heads=4, layers=4)
GLOBAL_BATCH = 32
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _data(rank, world):
    """The same random token windows for both frameworks; this rank's rows of each global batch."""
    import numpy as np
    from tinygrad_attn.batching import lm_batches
    from tinygrad_attn.distributed import shard_batch
    ids = np.random.default_rng(0).integers(0, SHAPE["vocab"], 200_000)
    return lambda rng: shard_batch(lm_batches(ids, GLOBAL_BATCH, SHAPE["seq_len"], rng), rank, world)


def _time_allreduce(allreduce, repeats=10):
    allreduce()
    t0 = time.perf_counter()
    for _ in range(repeats):
        allreduce()
    return (time.perf_counter() - t0) / repeats


# ---------------------------------------------------------------- tinygrad_attn

def worker_ours(steps, warmup):
    import numpy as np
    from models.config import GPTConfig
    from models.decoder import GPT
    import tinygrad_attn as tga
    from tinygrad_attn import distributed, optim
    from tinygrad_attn.train import Trainer
    comm = distributed.world()
    rank, world = (0, 1) if comm is None else (comm.rank, comm.size)
    tga.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=SHAPE["vocab"], seq_len=SHAPE["seq_len"], d_model=SHAPE["d"],
                          n_heads=SHAPE["heads"], n_layers=SHAPE["layers"]))
    opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    parallel = distributed.DataParallel(model) if world > 1 else None
    trainer = Trainer(model, opt, _data(rank, world), steps=warmup + steps, progress=False,
                      print_fn=lambda *a: None, parallel=parallel)
    trainer.fit(until=warmup)
    comm_before = parallel.comm_seconds if parallel else 0.0
    cpu_before = time.process_time()
    trainer.fit()
    cpu_s = (time.process_time() - cpu_before) / steps
    step_times = [GLOBAL_BATCH * SHAPE["seq_len"] / r["tokens_per_s"] for r in trainer.history[warmup:]]
    result = {"step_s": step_times, "cpu_s": cpu_s, "allreduce_blocked_s": ((parallel.comm_seconds - comm_before) / steps
                                                             if parallel else 0.0),
              "grad_bytes": sum(p.data.nbytes for p in model.parameters())}
    if parallel:
        MPI = distributed.import_mpi()
        flat = np.ones(result["grad_bytes"] // 4, dtype=np.float32)
        result["allreduce_s"] = _time_allreduce(lambda: comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM))
    return rank, result


# ---------------------------------------------------------------- PyTorch DDP

def _torch_gpt():
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF

    class Block(tnn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.ln1, self.ln2 = tnn.LayerNorm(d), tnn.LayerNorm(d)
            self.qkv, self.proj = tnn.Linear(d, 3 * d), tnn.Linear(d, d)
            self.mlp = tnn.Sequential(tnn.Linear(d, 4 * d), tnn.GELU(approximate="tanh"), tnn.Linear(4 * d, d))

        def forward(self, x):
            B, T, D = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
            q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
            return x + self.mlp(self.ln2(x))

    class GPT(tnn.Module):
        def __init__(self, vocab, seq_len, d, heads, layers):
            super().__init__()
            self.tok, self.pos = tnn.Embedding(vocab, d), tnn.Embedding(seq_len, d)
            self.blocks = tnn.ModuleList(Block(d, heads) for _ in range(layers))
            self.ln = tnn.LayerNorm(d)

        def forward(self, ids, targets):
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.ln(x) @ self.tok.weight.T   # tied head
            return tF.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT(**SHAPE)


def worker_torch(steps, warmup, port):
    import numpy as np
    import torch
    import torch.distributed as tdist
    from tinygrad_attn.distributed import launched_rank, launched_size
    torch.set_num_threads(1)
    rank, world = launched_rank(), launched_size()
    torch.manual_seed(0)
    model = _torch_gpt()
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    batches, rng = _data(rank, world), np.random.default_rng(1)
    times, cpu_s = [], 0.0
    for i in range(warmup + steps):
        t0, cpu0 = time.perf_counter(), time.process_time()
        x, y = (torch.from_numpy(a) for a in batches(rng))
        opt.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu_s += (time.process_time() - cpu0) / steps
    result = {"step_s": times, "cpu_s": cpu_s, "grad_bytes": sum(p.numel() * 4 for p in model.parameters())}
    if world > 1:
        flat = torch.ones(result["grad_bytes"] // 4)
        result["allreduce_s"] = _time_allreduce(lambda: tdist.all_reduce(flat))
        tdist.destroy_process_group()
    return rank, result


# ---------------------------------------------------------------- driver

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(framework, ranks, steps, warmup):
    from tinygrad_attn.distributed import mpiexec_command  # Open MPI as root needs its flags
    cmd, launcher_env = mpiexec_command(ranks, sys.executable, __file__, "--worker", framework, "--steps", steps,
                                        "--warmup", warmup, "--port", _free_port())
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD, **launcher_env},
                         cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} on {ranks} ranks failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _predict(t_sample, per_rank, grad_bytes, ranks, bandwidth, latency):
    """Step time of the README's model: compute of `per_rank` sequences + a ring allreduce of the gradient."""
    comm = 2 * (ranks - 1) / ranks * grad_bytes / bandwidth + 2 * (ranks - 1) * latency if ranks > 1 else 0.0
    return t_sample * per_rank + comm


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="timed steps per launch")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--frameworks", nargs="+", default=["ours", "torch"], choices=["ours", "torch"])
    p.add_argument("--network-gbps", type=float, default=10.0, help="network assumed for the prediction")
    p.add_argument("--network-latency-us", type=float, default=50.0)
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--report", metavar="JSON", help="print the tables of an earlier run's --json file, run nothing")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        rank, result = (worker_ours(args.steps, args.warmup) if args.worker == "ours"
                        else worker_torch(args.steps, args.warmup, args.port))
        if rank == 0:
            print(json.dumps(result))
        return

    if args.report:
        with open(args.report) as f:
            runs = {(key.split("x")[0], int(key.split("x")[1])): value for key, value in json.load(f).items()}
    else:
        runs = _measure(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({f"{k[0]}x{k[1]}": v for k, v in runs.items()}, f)
    _report(runs, args)


def _measure(args) -> dict:
    configs = [(f, n) for f in args.frameworks for n in (1, 2)]
    runs = {c: [] for c in configs}
    for r in range(args.rounds):
        shift = r % len(configs)
        for config in configs[shift:] + configs[:shift]:
            runs[config].append(_launch(*config, args.steps, args.warmup))
            print(f"round {r + 1}/{args.rounds} {config[0]} x{config[1]}: "
                  f"{statistics.median(runs[config][-1]['step_s']) * 1e3:.1f} ms/step", file=sys.stderr)
    return runs


def _report(runs, args) -> None:
    rounds, steps = len(next(iter(runs.values()))), len(next(iter(runs.values()))[0]["step_s"])
    tokens = GLOBAL_BATCH * SHAPE["seq_len"]
    median = statistics.median
    summary = {}
    for (framework, n), results in runs.items():
        summary[(framework, n)] = {
            "step_ms": median(median(res["step_s"]) for res in results) * 1e3,
            "cpu_ms": median(res["cpu_s"] for res in results) * 1e3,
            "blocked_ms": median(res.get("allreduce_blocked_s", 0.0) for res in results) * 1e3,
            "allreduce_ms": median(res.get("allreduce_s", 0.0) for res in results) * 1e3,
            "grad_bytes": results[0]["grad_bytes"]}

    def paired(a, b, key="step_s"):
        """Median over rounds of b's step time / a's within the round (both saw the same machine noise)."""
        pick = (lambda res: median(res[key])) if key == "step_s" else (lambda res: res[key])
        return median(pick(rb) / pick(ra) for ra, rb in zip(runs[a], runs[b]))

    print(f"\nglobal batch {GLOBAL_BATCH} x {SHAPE['seq_len']} tokens, model {SHAPE}, 1 thread per rank, "
          f"{rounds} rounds x {steps} steps, medians\n")
    print("| framework | ranks | ms/step | tokens/s | speed-up over 1 rank (paired) | CPU ms/step per rank | "
          "speed-up by CPU time | blocked in allreduce ms/step | one gradient allreduce ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (framework, n), s in summary.items():
        name = "tinygrad_attn (MPI)" if framework == "ours" else "PyTorch DDP (gloo)"
        one = (framework, 1)
        speedup = f"{paired((framework, n), one):.2f}x" if n > 1 else "1.00x"
        cpu_speedup = f"{paired((framework, n), one, 'cpu_s'):.2f}x" if n > 1 else "1.00x"
        blocked = f"{s['blocked_ms']:.2f}" if framework == "ours" and n > 1 else "-"
        allreduce = f"{s['allreduce_ms']:.2f}" if n > 1 else "-"
        print(f"| {name} | {n} | {s['step_ms']:.1f} | {tokens / s['step_ms'] * 1e3:,.0f} | {speedup} | "
              f"{s['cpu_ms']:.1f} | {cpu_speedup} | {blocked} | {allreduce} |")
    if ("ours", 2) in summary and ("torch", 2) in summary:
        print(f"\n2 ranks, tinygrad_attn tokens/s over PyTorch DDP's (paired): {paired(('ours', 2), ('torch', 2)):.2f}")
        print(f"1 rank, tinygrad_attn tokens/s over PyTorch's (paired): {paired(('ours', 1), ('torch', 1)):.2f}")

    ours1, ours2 = summary.get(("ours", 1)), summary.get(("ours", 2))
    if ours1 and ours2:
        grad_bytes = ours2["grad_bytes"]
        # CPU per step: 1 rank = t_fixed + B*t_sample, 2 ranks = t_fixed + B/2*t_sample (each rank)
        t_fixed = max(0.0, 2 * ours2["cpu_ms"] - ours1["cpu_ms"]) / 1e3
        t_sample = (ours1["cpu_ms"] / 1e3 - t_fixed) / GLOBAL_BATCH
        shm_bandwidth = grad_bytes / (ours2["allreduce_ms"] / 1e3)   # 2 ranks: 2(N-1)/N = 1
        bandwidth, latency = args.network_gbps * 1e9 / 8, args.network_latency_us * 1e-6
        print(f"\nstep-time model: t(N) = t_fixed + t_sample*B/N + 2(N-1)/N * bytes/bandwidth + 2(N-1)*latency; "
              f"from the CPU times t_fixed = {t_fixed * 1e3:.1f} ms, t_sample = {t_sample * 1e3:.2f} ms; "
              f"bytes = {grad_bytes / 1e6:.2f} MB; shared-memory allreduce {ours2['allreduce_ms']:.2f} ms on 2 ranks "
              f"(~{shm_bandwidth / 1e9:.1f} GB/s)")
        print(f"predicted for machines of this speed on a {args.network_gbps:g} Gb/s network with "
              f"{args.network_latency_us:g} us latency:")
        print("| ranks | global batch 32: ms/step | tokens/s | 32 per rank: ms/step | tokens/s |")
        print("|---|---|---|---|---|")
        for n in (1, 2, 4, 8, 16):
            strong = t_fixed + _predict(t_sample, GLOBAL_BATCH / n, grad_bytes, n, bandwidth, latency)
            weak = t_fixed + _predict(t_sample, GLOBAL_BATCH, grad_bytes, n, bandwidth, latency)
            print(f"| {n} | {strong * 1e3:.1f} | {tokens / strong:,.0f} | {weak * 1e3:.1f} | {tokens * n / weak:,.0f} |")


if __name__ == "__main__":
    main()
