"""Multi-head self-attention, with a KV cache for decoding and hooks for looking inside.

    attn = nn.MultiHeadAttention(d_model=64, n_heads=4)
    y = attn(x, key_padding_mask=real, is_causal=True)        # x (B, T, 64) -> y (B, T, 64)

Inside: one fused projection x -> [q | k | v] (d -> 3d), split into heads (B, H, T, dh),
scores = q k^T / sqrt(dh) (B, H, Tq, Tk), masked softmax over keys, weights @ v, heads
merged back to (B, T, d), output projection.

The middle is `F.scaled_dot_product_attention` on strided views of the projection (no
copies to split or merge heads). When something below is watching (kept weights, the
on_scores / on_weights hooks) it asks that function for its scores and weights, and the
same maths then runs step by step as Tensors; the two agree to float rounding.

Masks are boolean, True = may attend: `key_padding_mask` (B, Tk) marks real tokens,
`attn_mask` broadcasts to (B, H, Tq, Tk) (or is a float mask added to the scores), and
`is_causal` adds the causal mask, aligned bottom-right so a query at the end of a KV
cache sees every earlier key. They combine with AND; a query that may attend to
nothing gets zeros (and zero gradient), never NaN.

Looking inside (the graph stays intact, so gradients can be read too):
  - `attn.keep_weights = True` (or `forward(..., need_weights=True)` for one call) keeps
    `attn.last_scores` (pre-softmax, masked entries left as computed) and
    `attn.last_weights` (post-softmax), both (B, H, Tq, Tk) Tensors of this forward's
    graph. Call `.retain_grad()` on them before `backward()` to get dL/dscores and
    dL/dweights per head, or `.register_hook(fn)`.
  - `attn.on_scores` / `attn.on_weights`: callables given the scores / weights Tensor
    on every forward (e.g. to register hooks without keeping the tensors around).
  - `attn.on_qkv`: a callable given (q, k, v), each (B, H, T, dh), on every forward (k
    and v include cached positions); hook them to read dL/dq, dL/dk, dL/dv per head.
  - `attn.on_heads`: a callable given (heads, merged): each head's weighted sum of the
    values (B, H, T, dh), and the heads side by side before the output projection (B, T, d).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..errors import DeviceError, ShapeError
from ..functional.attention import additive_mask
from ..tensor import Tensor
from .layers import Linear
from .module import Module


class LayerKVCache:
    """The keys and values one attention layer has seen so far: arrays (B, H, T, dh)."""

    def __init__(self):
        self.k = self.v = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else int(self.k.shape[-2])

    def reset(self) -> None:
        self.k = self.v = None

    def append(self, k: Tensor, v: Tensor):
        """Add new keys/values (B, H, T_new, dh); return all of them as Tensors.

        The cached part enters the graph as a constant: gradients reach only the new
        positions (decoding normally runs under no_grad anyway).
        """
        if self.k is not None:
            if self.k.shape[:2] != k.shape[:2] or self.k.shape[-1] != k.shape[-1]:
                raise ShapeError(f"KVCache: cached keys have shape {tuple(self.k.shape)} (B, H, T, dh) but the "
                                 f"new keys have shape {tuple(k.shape)}; call reset() before a new batch")
            k = F.cat([Tensor.wrap(self.k, k.device), k], axis=-2)
            v = F.cat([Tensor.wrap(self.v, v.device), v], axis=-2)
        self.k, self.v = k.data, v.data
        return k, v


class KVCache:
    """Per-layer key/value caches for incremental decoding.

        cache = nn.KVCache(n_layers)
        for i, block in enumerate(blocks):
            x = block(x, is_causal=True, kv_cache=cache[i])
        cache.length  # positions cached so far (the position offset of the next token)

    A one-layer cache can be passed to MultiHeadAttention directly.
    """

    def __init__(self, n_layers: int = 1):
        self.layers = [LayerKVCache() for _ in range(n_layers)]

    def __getitem__(self, i) -> LayerKVCache:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def reset(self) -> None:
        for layer in self.layers:
            layer.reset()


def _layer_cache(kv_cache):
    if kv_cache is None or isinstance(kv_cache, LayerKVCache):
        return kv_cache
    if isinstance(kv_cache, KVCache):
        if len(kv_cache) == 1:
            return kv_cache[0]
        raise ValueError(f"MultiHeadAttention: got a KVCache of {len(kv_cache)} layers; pass this layer's slot, cache[i]")
    raise TypeError(f"MultiHeadAttention: kv_cache must be an nn.KVCache or one of its layers, got {type(kv_cache).__name__}")


def _bool_array(mask, like: Tensor, what: str):
    """A mask as a raw array on like's device."""
    if isinstance(mask, Tensor):
        if mask.device != like.device:
            raise DeviceError(f"MultiHeadAttention: {what} is on {mask.device} but the input is on {like.device}")
        return mask.data
    return like.backend.asarray(mask)


class MultiHeadAttention(Module):
    """Multi-head self-attention over (B, T, d_model) with a fused QKV projection.

    `init_std` is the std of the QKV projection's init; `out_init_std` (default init_std)
    that of the output projection (blocks pass GPT-2's 0.02/sqrt(2 n_layers)).
    `dropout` is applied to the attention weights while training.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True,
                 init_std: float = 0.02, out_init_std: float | None = None):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim, self.dropout = d_model, n_heads, d_model // n_heads, dropout
        self.qkv = Linear(d_model, 3 * d_model, bias=bias, init_std=init_std)
        self.out_proj = Linear(d_model, d_model, bias=bias, init_std=init_std if out_init_std is None else out_init_std)
        self.keep_weights = False
        self.on_scores = self.on_weights = self.on_qkv = self.on_heads = None
        self.last_scores = self.last_weights = None

    def _mask(self, x, t_q, t_k, key_padding_mask, attn_mask):
        """key_padding_mask and attn_mask as one mask for the scores (B, H, Tq, Tk): boolean,
        or float (added to the scores, -inf at padding) when attn_mask is float; or None."""
        mask = None
        if key_padding_mask is not None:
            kpm = _bool_array(key_padding_mask, x, "key_padding_mask")
            if kpm.dtype != np.bool_ or tuple(kpm.shape) != (x.shape[0], t_k):
                raise ShapeError(f"MultiHeadAttention: key_padding_mask must be bool of shape (B, Tk) = "
                                 f"{(x.shape[0], t_k)} (True = real token; Tk counts cached keys too), "
                                 f"got {kpm.dtype} {tuple(kpm.shape)}")
            mask = kpm[:, None, None, :]
        if attn_mask is None:
            return mask
        m = _bool_array(attn_mask, x, "attn_mask")
        F.require_broadcast("MultiHeadAttention", "attn_mask", m.shape, "the scores' shape (B, H, Tq, Tk)",
                            (x.shape[0], self.n_heads, t_q, t_k))
        if mask is None:
            return m
        return mask & m if m.dtype == np.bool_ else additive_mask(x, mask, m)

    def forward(self, x, key_padding_mask=None, is_causal=False, attn_mask=None, kv_cache=None, need_weights=False):
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ShapeError(f"MultiHeadAttention: expected input (B, T, {self.d_model}), got {tuple(x.shape)}")
        B, T, d = x.shape
        H, dh = self.n_heads, self.head_dim
        cache = _layer_cache(kv_cache)
        # split heads as views of the projection: (B, T, d) -> (B, T, H, dh) -> (B, H, T, dh)
        q, k, v = (t.reshape(B, T, H, dh).permute(0, 2, 1, 3) for t in F.split(self.qkv(x), d, axis=-1))
        if cache is not None:
            k, v = cache.append(k, v)
        if self.on_qkv is not None:
            self.on_qkv(q, k, v)
        mask = self._mask(x, T, k.shape[-2], key_padding_mask, attn_mask)
        watched = need_weights or self.keep_weights or self.on_scores or self.on_weights
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=self.dropout,
                                             training=self.training, return_weights=watched, return_scores=watched)
        self.last_scores = self.last_weights = None
        if watched:
            out, weights, scores = out
            if self.on_scores is not None:
                self.on_scores(scores)
            if self.on_weights is not None:
                self.on_weights(weights)
            if need_weights or self.keep_weights:
                self.last_scores, self.last_weights = scores, weights
        merged = out.permute(0, 2, 1, 3).reshape(B, T, d)  # merge heads: a view
        if self.on_heads is not None:
            self.on_heads(out, merged)
        return self.out_proj(merged)

    def extra_repr(self):
        return f"d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout}"
