"""The same models in PyTorch eager, for the benchmarks only (never imported by the engine or tests).

The same architecture as models/decoder.py and models/encoder.py (pre-norm blocks, fused
QKV projection, tanh GELU, tied output embedding, AdamW), written the way PyTorch users
write it: attention is `F.scaled_dot_product_attention`, as in nanoGPT, which on the CPU
runs PyTorch's fused flash-attention kernel.
"""
import torch
import torch.nn as tnn
import torch.nn.functional as tF


class Attention(tnn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.qkv = tnn.Linear(d, 3 * d)
        self.proj = tnn.Linear(d, d)

    def forward(self, x, causal=False, key_padding_mask=None):
        B, T, D = x.shape
        q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in self.qkv(x).split(D, dim=2))
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        out = tF.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class Block(tnn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln1, self.ln2 = tnn.LayerNorm(d), tnn.LayerNorm(d)
        self.attn = Attention(d, h)
        self.mlp = tnn.Sequential(tnn.Linear(d, 4 * d), tnn.GELU(approximate="tanh"), tnn.Linear(4 * d, d))

    def forward(self, x, causal=False, key_padding_mask=None):
        x = x + self.attn(self.ln1(x), causal, key_padding_mask)
        return x + self.mlp(self.ln2(x))


class TinyTransformer(tnn.Module):
    """Token + learned positions, N blocks, final LayerNorm, head tied to the embedding."""

    def __init__(self, vocab, d, h, layers, seq_len, causal):
        super().__init__()
        self.causal = causal
        self.tok = tnn.Embedding(vocab, d)
        self.pos = tnn.Embedding(seq_len, d)
        self.blocks = tnn.ModuleList(Block(d, h) for _ in range(layers))
        self.ln = tnn.LayerNorm(d)

    def forward(self, ids, key_padding_mask=None):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, self.causal, key_padding_mask)
        return self.ln(x) @ self.tok.weight.T


class TinyMaskedLM(TinyTransformer):
    """The encoder with BERT's MLM head (dense, GELU, LayerNorm, tied decoder + bias),
    run only on the masked rows, as models/encoder.py does."""

    def __init__(self, vocab, d, h, layers, seq_len):
        super().__init__(vocab, d, h, layers, seq_len, causal=False)
        self.head = tnn.Sequential(tnn.Linear(d, d), tnn.GELU(approximate="tanh"), tnn.LayerNorm(d))
        self.head_bias = tnn.Parameter(torch.zeros(vocab))

    def loss(self, ids, labels, key_padding_mask):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, False, key_padding_mask)
        rows = labels != -100
        h = self.head(self.ln(x)[rows])
        return tF.cross_entropy(h @ self.tok.weight.T + self.head_bias, labels[rows])


class UserGPT(tnn.Module):
    """examples/user_gpt.py line for line in PyTorch (benchmark case E)."""

    class Block(tnn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.ln1, self.ln2 = tnn.LayerNorm(d), tnn.LayerNorm(d)
            self.h, self.qkv, self.proj = h, tnn.Linear(d, 3 * d), tnn.Linear(d, d)
            self.up, self.down = tnn.Linear(d, 4 * d), tnn.Linear(4 * d, d)

        def attn(self, x):
            B, T, d = x.shape
            q, k, v = self.qkv(x).split(d, dim=-1)
            q, k, v = (t.view(B, T, self.h, d // self.h).transpose(1, 2) for t in (q, k, v))
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(B, T, d))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.down(tF.gelu(self.up(self.ln2(x)), approximate="tanh"))

    def __init__(self, vocab, d, h, layers, seq_len):
        super().__init__()
        self.wte, self.wpe = tnn.Embedding(vocab, d), tnn.Embedding(seq_len, d)
        self.blocks = tnn.ModuleList(self.Block(d, h) for _ in range(layers))
        self.ln_f = tnn.LayerNorm(d)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


def nanogpt_step(nanogpt_dir, vocab, d, h, layers, seq_len, batch, seed=0):
    """nanoGPT's own model.py and train.py's step (AdamW from configure_optimizers, betas
    (0.9, 0.99) and weight decay 0.1 as in config/train_shakespeare_char.py, clip 1.0)."""
    import sys
    sys.path.insert(0, nanogpt_dir)
    from model import GPT, GPTConfig  # nanoGPT's model.py, from a checkout given on the command line
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=seq_len, vocab_size=vocab, n_layer=layers, n_head=h, n_embd=d, dropout=0.0,
                          bias=True))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    g = torch.Generator().manual_seed(seed)
    X, Y = (torch.randint(0, vocab, (batch, seq_len), generator=g) for _ in range(2))

    def step():
        _, loss = model(X, Y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
    return step


def make_step(case, vocab, d, h, layers, seq_len, batch, seed=0):
    """A closure running one training step (forward, backward, AdamW) on fixed random data."""
    torch.manual_seed(seed)
    if case == "mha":
        layer = Attention(d, h)
        x = torch.randn(batch, seq_len, d, requires_grad=True)

        def step():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            layer(x).square().mean().backward()
        return step
    if case == "user_gpt":
        model = UserGPT(vocab, d, h, layers, seq_len)
    elif case == "mlm":
        model = TinyMaskedLM(vocab, d, h, layers, seq_len)
    else:
        model = TinyTransformer(vocab, d, h, layers, seq_len, causal=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq_len), generator=g)
    targets = torch.randint(0, vocab, (batch, seq_len), generator=g)
    mask = None
    if case == "mlm":
        keep = torch.rand(batch, seq_len, generator=g) < 0.15
        targets = torch.where(keep, targets, torch.full_like(targets, -100))
        # no padding in these batches: a PyTorch user passes no mask (an all-true one only costs)

    def step():
        opt.zero_grad(set_to_none=True)
        if case == "mlm":
            loss = model.loss(ids, targets, mask)
        else:
            loss = tF.cross_entropy(model(ids).reshape(-1, vocab), targets.reshape(-1))
        loss.backward()
        if case == "nanogpt":
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # a synchronizing read, like ours
    return step


def make_chain(n_ops, size):
    x0 = torch.randn(size)

    def step():
        x = x0.clone().requires_grad_(True)
        y = x
        for i in range(n_ops):
            y = y * 0.999 if i % 2 else y + 0.001
        y.sum().backward()
    return step
