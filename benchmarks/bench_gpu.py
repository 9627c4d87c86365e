"""GPU benchmark: training steps/s of the causal decoder, tinygrad_attn on CuPy against PyTorch eager on CUDA.

    python benchmarks/bench_gpu.py                       # d=512, 8 heads, 6 layers, T=256, batch 64, vocab 256
    python benchmarks/bench_gpu.py --steps 20 --rounds 3 --no-torch
    python benchmarks/bench_gpu.py --dry-run              # the rows it would time, without a GPU

One training step = forward, cross entropy, backward, AdamW. Rows:
  tinygrad_attn (fused)    the CuPy backend as shipped: fused softmax/LN/CE/GELU kernels
  tinygrad_attn (unfused)  the same with backend.cuda_kernels = None (array_kernels.py on CuPy)
  PyTorch eager            the same network hand-written in torch below (attention written
                           out: scores, masked_fill, softmax, weighted sum), float32, TF32 off
  PyTorch eager + SDPA     the same with torch's fused scaled_dot_product_attention (context)
Each row runs at the full batch and at --host-batch (default 1): at batch 1 the GPU has
almost nothing to do, so that row is what the host costs per step (Python, launches,
allocations, any synchronisation). Rounds alternate between the rows so that each sees
the same clocks; reported is the median step time, and the ratio to PyTorch eager at the
same batch. PyTorch is imported only here (never by the engine or the tests).
Our model is tinygrad_attn.models.decoder.GPT when models/ exists, else the same network from nn modules.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- ours

def _our_model(vocab, seq_len, d, heads, layers):
    import tinygrad_attn as tga
    from tinygrad_attn import functional as F
    try:
        from tinygrad_attn.models.config import GPTConfig
        from tinygrad_attn.models.decoder import GPT
        model = GPT(GPTConfig(vocab_size=vocab, seq_len=seq_len, d_model=d, n_heads=heads, n_layers=layers))
        return model, "tinygrad_attn.models.decoder.GPT", lambda ids, targets: model.loss(ids, targets)
    except ImportError:
        pass
    nn = tga.nn

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(seq_len, d)
            self.blocks = nn.ModuleList([nn.TransformerBlock(d, heads, n_layers_for_init=layers) for _ in range(layers)])
            self.ln = nn.LayerNorm(d)

        def forward(self, ids):
            x = self.tok(ids) + self.pos(np.arange(ids.shape[1]))
            for block in self.blocks:
                x = block(x, is_causal=True)
            return self.ln(x) @ self.tok.weight.T

    model = Decoder()
    return model, "nn modules", lambda ids, targets: F.cross_entropy(model(ids), targets)


def make_ours(args, fused: bool):
    import tinygrad_attn as tga
    tga.manual_seed(0)
    backend = tga.get_backend("cuda")
    model, kind, loss_fn = _our_model(args.vocab, args.seq, args.d, args.heads, args.layers)
    model.to("cuda")
    opt = tga.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, args.vocab, (args.batch, args.seq))
    targets = rng.integers(0, args.vocab, (args.batch, args.seq))
    saved = backend.cuda_kernels

    def step():
        backend.cuda_kernels = saved if fused else None
        try:
            opt.zero_grad()
            loss = loss_fn(ids, targets)
            loss.backward()
            opt.step()
            return loss.item()  # waits for the GPU
        finally:
            backend.cuda_kernels = saved
    return step, kind


# ---------------------------------------------------------------- PyTorch, the same network

def make_torch(args, sdpa: bool):
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products as ours are
    torch.manual_seed(0)
    dev = torch.device("cuda")
    d, h = args.d, args.heads

    class Attention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = tnn.Linear(d, 3 * d), tnn.Linear(d, d)

        def forward(self, x, causal):
            B, T, _ = x.shape
            q, k, v = self.qkv(x).view(B, T, 3, h, d // h).permute(2, 0, 3, 1, 4)
            if sdpa:
                out = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = (q * (1.0 / math.sqrt(d // h))) @ k.transpose(-1, -2)
                out = scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v
            return self.proj(out.transpose(1, 2).reshape(B, T, d))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2, self.attn = tnn.LayerNorm(d), tnn.LayerNorm(d), Attention()
            self.mlp = tnn.Sequential(tnn.Linear(d, 4 * d), tnn.GELU(approximate="tanh"), tnn.Linear(4 * d, d))

        def forward(self, x, causal):
            x = x + self.attn(self.ln1(x), causal)
            return x + self.mlp(self.ln2(x))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = tnn.Embedding(args.vocab, d), tnn.Embedding(args.seq, d)
            self.blocks = tnn.ModuleList(Block() for _ in range(args.layers))
            self.ln = tnn.LayerNorm(d)

        def forward(self, ids, causal):
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
            for block in self.blocks:
                x = block(x, causal)
            return self.ln(x) @ self.tok.weight.T

    model = GPT().to(dev)
    for name, p in model.named_parameters():  # init as ours (N(0, 0.02), zero biases) so the losses compare
        if p.dim() >= 2:
            tnn.init.normal_(p, std=0.02)
        elif name.endswith("bias"):
            tnn.init.zeros_(p)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g).to(dev)
    targets = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g).to(dev)
    causal = torch.ones(args.seq, args.seq, dtype=torch.bool, device=dev).tril()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = tF.cross_entropy(model(ids, causal).reshape(-1, args.vocab), targets.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()  # waits for the GPU
    return step, "hand-written"


# ---------------------------------------------------------------- timing

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-unfused", action="store_true")
    p.add_argument("--host-batch", type=int, default=1,
                   help="also time every row at this batch (the host's cost per step); 0: full batch only")
    p.add_argument("--dry-run", action="store_true", help="print the rows and batches it would time, and stop")
    args = p.parse_args(argv)
    batches = [args.batch] + ([args.host_batch] if 0 < args.host_batch != args.batch else [])
    names = ["tinygrad_attn (fused)"] + ([] if args.no_unfused else ["tinygrad_attn (unfused)"])
    names += [] if args.no_torch else ["PyTorch eager", "PyTorch eager + SDPA"]
    if args.dry_run:
        for batch in batches:
            for name in names:
                print(f"would time: {name}, batch {batch}, T={args.seq}, d_model={args.d}, "
                      f"{args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up")
        return 0

    import tinygrad_attn as tga
    if not tga.cuda_is_available():
        print("bench_gpu: needs CuPy and a CUDA GPU (pip install 'tinygrad_attn[gpu]')")
        return 1
    import cupy as cp

    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch
            if not torch.cuda.is_available():
                raise ImportError("torch sees no GPU")
        except ImportError as e:
            print(f"(no PyTorch comparison: {e})")
            with_torch = False
    rows = {}  # (implementation, batch) -> a function that builds its step
    for batch in batches:
        at = argparse.Namespace(**{**vars(args), "batch": batch})
        rows["tinygrad_attn (fused)", batch] = lambda at=at: make_ours(at, True)
        if not args.no_unfused:
            rows["tinygrad_attn (unfused)", batch] = lambda at=at: make_ours(at, False)
        if with_torch:
            rows["PyTorch eager", batch] = lambda at=at: make_torch(at, False)
            rows["PyTorch eager + SDPA", batch] = lambda at=at: make_torch(at, True)
    steps, kinds, losses, times = {}, {}, {}, {name: [] for name in rows}
    for name, make in list(rows.items()):
        try:
            steps[name], kinds[name] = make()
            for _ in range(args.warmup):  # compiles kernels, fills the memory pools
                losses[name] = steps[name]()
        except Exception:  # noqa: BLE001  (report the others even if one implementation fails)
            traceback.print_exc()
            print(f"({name} failed: left out)")
            steps.pop(name, None)
            del rows[name]
    for _ in range(args.rounds):
        for name, step in steps.items():
            for _ in range(args.steps):
                t0 = time.perf_counter()
                losses[name] = step()
                times[name].append(time.perf_counter() - t0)

    props = cp.cuda.runtime.getDeviceProperties(0)
    versions = f"CuPy {cp.__version__}"
    if with_torch:
        import torch
        versions += f", torch {torch.__version__}"
    print(f"\n{props['name'].decode()}, {versions}; causal decoder d_model={args.d}, {args.heads} heads, "
          f"{args.layers} layers, T={args.seq}, batch {' and '.join(map(str, batches))}, vocab {args.vocab}; float32; "
          f"{args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up\n")
    print("| implementation | batch | model | ms / step | steps / s | time vs PyTorch eager | last loss |")
    print("|---|---|---|---|---|---|---|")
    for (name, batch) in rows:
        ref = times.get(("PyTorch eager", batch))
        med = statistics.median(times[name, batch])
        ratio = f"{med / statistics.median(ref):.2f}x" if ref else "-"
        print(f"| {name} | {batch} | {kinds[name, batch]} | {med * 1e3:.1f} | {1 / med:.2f} | {ratio} | "
              f"{losses[name, batch]:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
