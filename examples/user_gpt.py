"""A GPT written the way a user writes one: only public `nn` and `F` ops, nanoGPT's recipe.

    python examples/user_gpt.py               # train it briefly on the bundled corpus, then sample
    python examples/user_gpt.py --quick       # a few steps (what the tests run)

No MultiHeadAttention here: the attention is the three lines every PyTorch user knows,

    q, k, v = F.split(self.qkv(x), d, axis=-1)                      # views of one projection
    q, k, v = (t.reshape(B, T, H, d // H).permute(0, 2, 1, 3) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)

and it runs on the same single attention op, with the same fast backward, as the
library's own models (benchmarks/bench_cpu.py case E times it against the same code in
PyTorch). The classes are importable: `from examples.user_gpt import UserGPT`.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinygrad_attn as tga  # noqa: E402
from tinygrad_attn import functional as F, nn, optim  # noqa: E402


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = F.split(self.qkv(x), d, axis=-1)
        q, k, v = (t.reshape(B, T, self.n_heads, d // self.n_heads).permute(0, 2, 1, 3) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.permute(0, 2, 1, 3).reshape(B, T, d))


class MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), CausalSelfAttention(d, n_heads)
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class UserGPT(nn.Module):
    """Token + position embeddings, pre-norm blocks, final LayerNorm, head tied to the token table."""

    def __init__(self, vocab: int, d: int = 128, n_heads: int = 4, n_layers: int = 4, seq_len: int = 128):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq_len, d)
        self.blocks = nn.ModuleList([Block(d, n_heads) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(np.arange(T))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T

    def loss(self, ids, targets):
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), np.asarray(targets).reshape(-1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--quick", action="store_true", help="a few tiny steps (for the tests)")
    args = p.parse_args(argv)
    from tinygrad_attn.data import corpus_splits, load_shakespeare
    from tinygrad_attn.tokenizers import CharTokenizer

    tga.manual_seed(0)
    text = corpus_splits(load_shakespeare())[0][: 200_000 if args.quick else 2_000_000]
    tok = CharTokenizer.train(text)
    data = np.asarray(tok.encode(text), dtype=np.int64)
    steps, batch, T = (4, 4, 32) if args.quick else (args.steps, 12, 64)
    model = UserGPT(tok.vocab_size, d=32 if args.quick else 128, n_heads=4, n_layers=2 if args.quick else 4, seq_len=T)
    opt = optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    rng = np.random.default_rng(0)
    start, first = time.perf_counter(), None
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - T - 1, batch)
        ids = np.stack([data[s:s + T] for s in starts])
        targets = np.stack([data[s + 1:s + T + 1] for s in starts])
        opt.zero_grad()
        loss = model.loss(ids, targets)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        first = loss.item() if first is None else first
    elapsed = time.perf_counter() - start
    print(f"{steps} steps of batch {batch} x {T} in {elapsed:.1f} s ({1000 * elapsed / steps:.0f} ms/step): "
          f"loss {first:.3f} -> {loss.item():.3f} (uniform guess: {math.log(tok.vocab_size):.3f})")
    with tga.no_grad():
        ids = np.asarray([tok.encode("ROMEO:")], dtype=np.int64)
        for _ in range(40 if args.quick else 200):
            logits = model(ids[:, -T:])[0, -1].numpy().astype(np.float64)
            probs = np.exp(logits - logits.max())
            ids = np.concatenate([ids, [[rng.choice(len(probs), p=probs / probs.sum())]]], axis=1)
    print(tok.decode(ids[0].tolist()))


if __name__ == "__main__":
    main()
