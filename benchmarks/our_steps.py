"""The benchmark steps in tinygrad_attn: the same work as torch_reference.py, on the real models."""
import numpy as np

import tinygrad_attn as tga
from tinygrad_attn.models.config import GPTConfig, MLMConfig
from tinygrad_attn.models.decoder import GPT
from tinygrad_attn.models.encoder import MaskedLM
from tinygrad_attn import nn, optim


def make_step(case, vocab, d, h, layers, seq_len, batch, seed=0):
    """A closure running one training step (forward, backward, AdamW) on fixed random data."""
    tga.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if case == "mha":
        layer = nn.MultiHeadAttention(d, h)
        x = tga.randn(batch, seq_len, d, requires_grad=True)

        def step():
            layer.zero_grad()
            x.grad = None
            (layer(x) ** 2).mean().backward()
        return step
    ids = rng.integers(0, vocab, (batch, seq_len))
    targets = rng.integers(0, vocab, (batch, seq_len))
    clip = None
    if case == "user_gpt":  # examples/user_gpt.py: written from public nn/F ops only
        from examples.user_gpt import UserGPT
        model = UserGPT(vocab, d, h, layers, seq_len)
        loss_fn = lambda: model.loss(ids, targets)  # noqa: E731
    elif case == "nanogpt":  # nanoGPT's train.py recipe on our GPT: AdamW, gradient clipping at 1.0
        model = GPT(GPTConfig(vocab_size=vocab, seq_len=seq_len, d_model=d, n_heads=h, n_layers=layers))
        loss_fn, clip = (lambda: model.loss(ids, targets)), 1.0
    elif case == "gpt":
        model = GPT(GPTConfig(vocab_size=vocab, seq_len=seq_len, d_model=d, n_heads=h, n_layers=layers))
        loss_fn = lambda: model.loss(ids, targets)  # noqa: E731
    else:
        model = MaskedLM(MLMConfig(vocab_size=vocab, pad_id=0, max_len=seq_len, d_model=d, n_heads=h, n_layers=layers))
        labels = np.where(rng.random((batch, seq_len)) < 0.15, targets, -100)
        mask = np.ones((batch, seq_len), dtype=bool)
        loss_fn = lambda: model.loss(ids, labels, mask)  # noqa: E731
    opt = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)

    def step():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        if clip is not None:
            optim.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss.item()
    return step


def make_chain(n_ops, size):
    x0 = np.random.default_rng(0).standard_normal(size).astype(np.float32)

    def step():
        x = tga.tensor(x0, requires_grad=True)
        y = x
        for i in range(n_ops):
            y = y * 0.999 if i % 2 else y + 0.001
        y.sum().backward()
    return step
