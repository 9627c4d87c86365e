"""The pre-norm transformer block shared by the encoder (bidirectional) and the decoder (causal).

    x = x + dropout(attn(ln1(x)))     # tokens exchange information
    x = x + dropout(mlp(ln2(x)))      # each token is transformed on its own

Pre-norm (GPT-2 style) keeps the residual stream an identity path from input to
output, which is what lets deep stacks train without warm-up tricks on the norms.
"""
from __future__ import annotations

import math

from .attention import MultiHeadAttention
from .layers import GELU, Dropout, LayerNorm, Linear, Sequential
from .module import Module


class TransformerBlock(Module):
    """Pre-norm block: attention and an MLP (Linear -> GELU(tanh) -> Linear), each in a residual branch.

    `d_ff` defaults to 4 * d_model. The two projections that write into the residual
    stream (attention output, second MLP layer) start with std
    init_std / sqrt(2 * n_layers_for_init), GPT-2's scaled init, so the residual
    stream's variance does not grow with depth.
    Parts: `.ln1`, `.attn` (MultiHeadAttention), `.ln2`, `.mlp` (Sequential), `.drop`.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 n_layers_for_init: int = 1, init_std: float = 0.02, bias: bool = True):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        resid_std = init_std / math.sqrt(2 * n_layers_for_init)
        self.ln1 = LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout, bias=bias, init_std=init_std, out_init_std=resid_std)
        self.ln2 = LayerNorm(d_model)
        self.mlp = Sequential(Linear(d_model, d_ff, bias=bias, init_std=init_std), GELU("tanh"),
                              Linear(d_ff, d_model, bias=bias, init_std=resid_std))
        self.drop = Dropout(dropout)

    def forward(self, x, key_padding_mask=None, is_causal=False, kv_cache=None, attn_mask=None):
        h = self.attn(self.ln1(x), key_padding_mask=key_padding_mask, is_causal=is_causal,
                      attn_mask=attn_mask, kv_cache=kv_cache)
        x = x + self.drop(h)
        return x + self.drop(self.mlp(self.ln2(x)))
