"""Time one MultiHeadAttention forward+backward against the same layer written by hand in NumPy.

    python benchmarks/bench_mha.py [--batch 32 --seq 128 --d-model 128 --heads 4 --steps 20 --causal]

Both sides compute the same function (fused QKV projection, per-head softmax attention,
output projection, loss = sum(y * cotangent)) in float32 on the CPU, and the script
first checks that their gradients agree, so the timing compares like with like.
The gap is the price of the autograd engine: graph bookkeeping, generic backward
rules (e.g. zero-filled scatter for the q/k/v split) and no hand-fused kernels.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import tinygrad_attn as tga
from tinygrad_attn import nn


def numpy_mha(x, w_qkv, b_qkv, w_out, b_out, n_heads, gy, causal):
    """Forward and backward by hand; returns (y, dx, dw_qkv, db_qkv, dw_out, db_out)."""
    B, T, d = x.shape
    dh = d // n_heads
    scale = 1.0 / math.sqrt(dh)
    x2 = x.reshape(-1, d)
    qkv = x2 @ w_qkv.T + b_qkv                                      # (B*T, 3d)
    qkv = qkv.reshape(B, T, 3, n_heads, dh).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
    q, k, v = qkv[0], qkv[1], qkv[2]
    s = (q * scale) @ k.swapaxes(-1, -2)                              # (B, H, T, T)
    if causal:
        s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    o = p @ v                                                        # (B, H, T, dh)
    o2 = o.transpose(0, 2, 1, 3).reshape(-1, d)
    y = o2 @ w_out.T + b_out
    # backward
    gy2 = gy.reshape(-1, d)
    dw_out, db_out = gy2.T @ o2, gy2.sum(0)
    do = (gy2 @ w_out).reshape(B, T, n_heads, dh).transpose(0, 2, 1, 3)
    dp = do @ v.swapaxes(-1, -2)
    dv = p.swapaxes(-1, -2) @ do
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    dq = (ds @ k) * scale
    dk = ds.swapaxes(-1, -2) @ (q * scale)
    dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(-1, 3 * d)
    dw_qkv, db_qkv = dqkv.T @ x2, dqkv.sum(0)
    dx = (dqkv @ w_qkv).reshape(B, T, d)
    return y.reshape(B, T, d), dx, dw_qkv, db_qkv, dw_out, db_out


def engine_step(mha, x, gy, causal):
    mha.zero_grad()
    x.grad = None
    y = mha(x, is_causal=causal)
    (y * gy).sum().backward()
    return y


def timeit_pair(fn_a, fn_b, steps):
    """Median and min seconds of each, alternating a and b so both see the same machine load."""
    fn_a(), fn_b()  # warm-up
    times = ([], [])
    for _ in range(steps):
        for fn, out in ((fn_a, times[0]), (fn_b, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [(float(np.median(t)), float(np.min(t))) for t in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--causal", action="store_true")
    args = ap.parse_args()
    B, T, d, H = args.batch, args.seq, args.d_model, args.heads

    tga.manual_seed(0)
    mha = nn.MultiHeadAttention(d, H)
    for p in mha.parameters():  # nonzero biases so their gradients are tested too
        p.data += np.random.default_rng(1).standard_normal(p.shape).astype(np.float32) * 0.01
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((B, T, d)).astype(np.float32)
    gy_np = rng.standard_normal((B, T, d)).astype(np.float32)
    x, gy = tga.tensor(x_np, requires_grad=True), tga.tensor(gy_np)
    weights = [mha.qkv.weight.data, mha.qkv.bias.data, mha.out_proj.weight.data, mha.out_proj.bias.data]

    y = engine_step(mha, x, gy, args.causal)
    ref = numpy_mha(x_np, *weights, H, gy_np, args.causal)
    got = [y.numpy(), x.grad.numpy(), mha.qkv.weight.grad.numpy(), mha.qkv.bias.grad.numpy(),
           mha.out_proj.weight.grad.numpy(), mha.out_proj.bias.grad.numpy()]
    for name, a, b in zip(["y", "dx", "dW_qkv", "db_qkv", "dW_out", "db_out"], got, ref):
        err = np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12)
        assert err < 1e-4, f"{name}: engine and NumPy disagree (relative error {err:.2e})"

    (engine_med, engine_min), (numpy_med, numpy_min) = timeit_pair(
        lambda: engine_step(mha, x, gy, args.causal), lambda: numpy_mha(x_np, *weights, H, gy_np, args.causal), args.steps)
    print(f"MultiHeadAttention forward+backward, B={B} T={T} d={d} heads={H} causal={args.causal}, float32 CPU "
          f"(median of {args.steps} steps; gradients agree with the NumPy reference)")
    print(f"  tinygrad_attn : {engine_med * 1e3:8.2f} ms  (min {engine_min * 1e3:.2f})")
    print(f"  hand NumPy    : {numpy_med * 1e3:8.2f} ms  (min {numpy_min * 1e3:.2f})")
    print(f"  ratio         : {engine_med / numpy_med:8.2f}x median, {engine_min / numpy_min:.2f}x min")


if __name__ == "__main__":
    main()
