"""Each fused CUDA kernel against the same computation written as plain CuPy expressions.

    python benchmarks/bench_fused_kernels.py                  # float32 and float16, markdown table
    python benchmarks/bench_fused_kernels.py --dtypes float32 --repeat 50

The unfused side is the CuPy backend with its CUDA kernels switched off
(`backend.cuda_kernels = None`): backend/array_kernels.py's array expressions (one kernel launch and one trip through memory per
expression). Shapes are those of the GPU training benchmark's decoder (batch 64,
T=256, d_model=512, 8 heads, vocab 256) plus a GPT-2-sized vocabulary for the loss.
Times are GPU times from cupyx.profiler.benchmark (median of --repeat runs after
warm-up). "GB/s" counts the bytes the fused kernel must move at least (each input read
once, each output written once), to compare with the card's memory bandwidth.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cases(cp, dtype, rng):
    """(name, fused call, reference call, bytes moved) for each kernel, forward and backward."""
    import tinygrad_attn as tga
    import copy
    backend = tga.get_backend("cuda")
    fused, ref = backend.cuda_kernels, copy.copy(backend)
    ref.cuda_kernels = None  # the array kernels, on CuPy

    def arr(*shape, scale=1.0):
        return cp.asarray(rng.standard_normal(shape, dtype=np.float32) * scale).astype(dtype)

    size = np.dtype(dtype).itemsize
    B, T, d, H, V = 64, 256, 512, 8, 256
    out = []

    scores, g_scores = arr(B, H, T, T, scale=3), arr(B, H, T, T)
    causal = cp.tril(cp.ones((T, T), dtype=bool))
    n = scores.size
    out.append((f"softmax fwd, causal ({B},{H},{T},{T})", lambda: fused.softmax(scores, causal),
                lambda: ref.softmax(scores, -1, causal), 2 * n * size))
    y = fused.softmax(scores, causal)
    out.append(("softmax bwd", lambda: fused.softmax_backward(y, g_scores),
                lambda: ref.softmax_backward(y, g_scores, -1), 3 * n * size))

    logits, g_logits = arr(B * T, V, scale=3), arr(B * T, V)
    n = logits.size
    out.append((f"log_softmax fwd ({B * T},{V})", lambda: fused.log_softmax(logits),
                lambda: ref.log_softmax(logits, -1), 2 * n * size))
    ly = fused.log_softmax(logits)
    out.append(("log_softmax bwd", lambda: fused.log_softmax_backward(ly, g_logits),
                lambda: ref.log_softmax_backward(ly, g_logits, -1), 3 * n * size))

    for rows, vocab in ((B * T, V), (2048, 50257)):
        x = arr(rows, vocab, scale=3)
        t = cp.asarray(rng.integers(0, vocab, rows))
        _, stats = fused.cross_entropy(x, t, -100)
        _, probs = ref.cross_entropy(x, t, -100, 0.0)
        scale = cp.asarray(1.0 / rows, dtype=dtype)
        out.append((f"cross_entropy fwd ({rows},{vocab})", lambda x=x, t=t: fused.cross_entropy(x, t, -100),
                    lambda x=x, t=t: ref.cross_entropy(x, t, -100, 0.0), x.size * size))
        out.append(("cross_entropy bwd", lambda x=x, t=t, s=stats, c=scale: fused.cross_entropy_backward(x, t, s, c, -100),
                    lambda x=x, t=t, p=probs, c=scale: ref.cross_entropy_backward(x, t, p, c, -100, 0.0), 2 * x.size * size))

    h, g_h, w, b = arr(B * T, d, scale=2), arr(B * T, d), arr(d), arr(d)
    n = h.size
    _, mean, rstd = fused.layer_norm(h, w, b, 1e-5)
    _, saved = ref.layer_norm(h, w, b, 1e-5)
    out.append((f"layer_norm fwd ({B * T},{d})", lambda: fused.layer_norm(h, w, b, 1e-5),
                lambda: ref.layer_norm(h, w, b, 1e-5), 2 * n * size))
    out.append(("layer_norm bwd (dx, dw, db)", lambda: fused.layer_norm_backward(h, w, g_h, mean, rstd),
                lambda: ref.layer_norm_backward(h, w, g_h, saved, (True, True, True)), 3 * n * size))

    m, g_m = arr(B * T, 4 * d), arr(B * T, 4 * d)
    n = m.size
    out.append((f"gelu fwd ({B * T},{4 * d})", lambda: fused.gelu(m), lambda: ref.gelu_tanh(m), 2 * n * size))
    s_m = ref.gelu_tanh(m)[1]
    out.append(("gelu bwd", lambda: fused.gelu_backward(m, g_m), lambda: ref.gelu_tanh_backward(m, s_m, g_m), 3 * n * size))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtypes", nargs="+", default=["float32", "float16"])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)

    import tinygrad_attn as tga
    if not tga.cuda_is_available():
        print("bench_fused_kernels: needs CuPy and a CUDA GPU (pip install 'tinygrad_attn[gpu]')")
        return 1
    import cupy as cp
    from cupyx.profiler import benchmark

    props = cp.cuda.runtime.getDeviceProperties(0)
    print(f"\n{props['name'].decode()}, CuPy {cp.__version__}, CUDA runtime {cp.cuda.runtime.runtimeGetVersion()}\n")
    print("| kernel | dtype | fused ms | CuPy expressions ms | speed-up | fused GB/s |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in args.dtypes:
        dtype = np.dtype(name)
        for label, fused, ref, nbytes in _cases(cp, dtype, rng):
            t_f = float(np.median(benchmark(fused, (), n_repeat=args.repeat, n_warmup=args.warmup).gpu_times[0]))
            t_r = float(np.median(benchmark(ref, (), n_repeat=args.repeat, n_warmup=args.warmup).gpu_times[0]))
            print(f"| {label} | {name} | {t_f * 1e3:.3f} | {t_r * 1e3:.3f} | {t_r / t_f:.1f}x | {nbytes / t_f / 1e9:.0f} |",
                  flush=True)
        cp.get_default_memory_pool().free_all_blocks()
    return 0


if __name__ == "__main__":
    sys.exit(main())
