"""Attention: scaled_dot_product_attention (the one implementation) and causal_mask."""
from __future__ import annotations

import functools
import math

import numpy as np

from ..backend import get_backend
from ..dtypes import is_float
from ..errors import DeviceError, DTypeError, ShapeError
from ..ops import attention as A
from ..shapes import broadcast_shape
from ..tensor import Tensor
from ._common import _array_on, _like, require_broadcast
from .arrange import repeat_interleave
from .elementwise import where
from .linalg import matmul
from .nn import dropout, dropout_keep, softmax


def causal_mask(t_q: int, t_k: int, backend_device="cpu"):
    """Boolean (t_q, t_k) mask, True = may attend. Aligned bottom-right: query i sits at
    absolute position t_k - t_q + i, which is what decoding with a KV cache needs."""
    xp = get_backend(backend_device).xp
    return xp.tril(xp.ones((t_q, t_k), dtype=bool), k=t_k - t_q)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None,
                                 training=True, return_weights=False, return_scores=False, enable_gqa=False):
    """softmax(q k^T * scale, masked) v over the last two axes.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv), any strided views (the heads of a
    split projection are read in place). `attn_mask` is boolean (True = may attend)
    broadcasting to (..., Tq, Tk), or a float mask added to the scores; `is_causal` ANDs
    in the causal mask (aligned bottom-right, for KV caches). A float mask that requires
    grad (a learned bias: ALiBi slopes, T5 relative positions) gets dL/d(mask) = dL/d(scores),
    summed back over the axes it broadcasts along. Rows with nothing to
    attend to give zeros and zero gradients. Dropout `dropout_p` acts on the weights.

    Returns the output; with `return_weights` / `return_scores` a tuple (output, weights,
    scores) of those asked for. Then the same maths runs step by step (matmul, softmax,
    dropout, matmul), every step a Tensor of the graph that can be kept and hooked;
    otherwise it runs as one op (ops/attention.py) whose scores never leave the kernel.
    Both are differentiable any number of times and agree to rounding.

    `enable_gqa`: grouped-query attention, k and v (..., Hkv, Tk, d) with fewer heads than q
    (..., H, Tq, d), H a multiple of Hkv; each k/v head serves H / Hkv query heads in a row.
    """
    op = "scaled_dot_product_attention"
    if enable_gqa:
        k, v = _share_kv_heads(op, q, k, v)
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{op}: q {q.shape}, k {k.shape}, v {v.shape} need q[-1] == k[-1] and k[-2] == v[-2]")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    allowed, added = _attention_masks(op, q, attn_mask, is_causal, t_q, t_k)
    try:
        scores_shape = broadcast_shape(q.shape[:-1], k.shape[:-2] + (1,), v.shape[:-2] + (1,)) + (t_k,)
    except ValueError:
        raise ShapeError(f"{op}: the batch axes of q {q.shape}, k {k.shape} and v {v.shape} do not broadcast") from None
    for m in (allowed, added):
        if m is not None:
            require_broadcast(op, "mask", m.shape, "the scores' shape", scores_shape)
    if is_causal and attn_mask is None:  # the common case: one cached, read-only mask per size
        mask = _causal_addend(t_q, t_k, q.dtype, q.device)
    else:
        mask = additive_mask(q, allowed, added)
    if not (return_weights or return_scores):
        keep = dropout_keep(q, broadcast_shape(scores_shape, *(m.shape for m in (allowed, added) if m is not None)),
                            dropout_p, training)
        masks = () if mask is None else (mask if isinstance(mask, Tensor) else Tensor.wrap(mask, q.device),)
        return A.Attention.apply(q, k, v, *masks, scale=scale, keep=keep)
    # step by step, as the op's Tensor-level backward does: -inf entries leave the softmax
    # through its boolean mask (so an empty row gives 0), the finite ones are added
    scores = matmul(q, k.swapaxes(-1, -2)) * scale
    mask_data = mask.data if isinstance(mask, Tensor) else mask
    allowed = None if mask is None else q.backend.xp.isfinite(mask_data)
    if added is not None:
        scores = scores + (where(allowed, mask, 0.0) if isinstance(mask, Tensor)
                           else _like(q.backend.xp.where(allowed, mask, 0), q))
    weights = softmax(scores, -1, mask=allowed)
    out = matmul(dropout(weights, dropout_p, training), v)
    return (out,) + ((weights,) if return_weights else ()) + ((scores,) if return_scores else ())


def _share_kv_heads(op, q, k, v):
    """k and v with each head repeated to match q's heads (axis -3), for grouped-query attention."""
    if min(q.ndim, k.ndim, v.ndim) < 3 or k.shape[-3] != v.shape[-3] or q.shape[-3] % k.shape[-3]:
        raise ShapeError(f"{op}: enable_gqa needs q (..., H, Tq, d), k and v (..., Hkv, Tk, d) with H a multiple of "
                         f"Hkv, got q {q.shape}, k {k.shape}, v {v.shape}")
    group = q.shape[-3] // k.shape[-3]
    if group == 1:
        return k, v
    return repeat_interleave(k, group, -3), repeat_interleave(v, group, -3)


def _attention_masks(op, q, attn_mask, is_causal, t_q, t_k):
    """(boolean mask or None, float mask or None) from attn_mask and is_causal."""
    allowed, added = None, None
    if isinstance(attn_mask, Tensor) and attn_mask.requires_grad and is_float(attn_mask.dtype):
        if attn_mask.device != q.device:
            raise DeviceError(f"{op}: attn_mask on {attn_mask.device} used with q on {q.device}")
        added = attn_mask  # a learned bias: it stays in the graph
    elif attn_mask is not None:
        m = _array_on(q, attn_mask)
        if m.dtype == np.bool_:
            allowed = m
        elif m.dtype.kind == "f":
            added = m
        else:
            raise DTypeError(f"{op}: attn_mask of dtype {m.dtype} (shape {m.shape}) is neither boolean (True = may "
                             "attend) nor floating point (added to the scores); convert a 0/1 mask with .astype(bool)")
    if is_causal:
        c = _causal_allowed(t_q, t_k, q.device)
        allowed = c if allowed is None else allowed & c
    return allowed, added


def additive_mask(like: Tensor, allowed, added):
    """One float mask to add to the scores, in the masks' own (small) broadcast shape:
    `added` where `allowed`, -inf elsewhere; None when there is nothing to add. A Tensor
    `added` (a learned bias) gives a Tensor of the graph, so its gradient flows back."""
    xp, dtype = like.backend.xp, like.dtype
    if isinstance(added, Tensor):
        added = added if added.dtype == dtype else added.astype(dtype)
        return added if allowed is None else where(allowed, added, float("-inf"))
    if (allowed is not None and like.backend.values_on_host and bool(allowed.all())  # free on the host only
            and broadcast_shape(allowed.shape[:-1], like.shape[:-1]) == like.shape[:-1]):
        allowed = None  # e.g. a padding mask of a batch without padding: nothing to add (nor batch axes to keep)
    return _addend(xp, dtype, allowed, added)


def _addend(xp, dtype, allowed, added):
    """`added` (or 0) where `allowed`, -inf elsewhere, in `dtype`; None when both are None."""
    if allowed is None:
        return None if added is None else added.astype(dtype, copy=False)
    kept = xp.asarray(0, dtype=dtype) if added is None else added.astype(dtype, copy=False)
    return xp.where(allowed, kept, xp.asarray(-xp.inf, dtype=dtype))


@functools.lru_cache(maxsize=32)
def _causal_allowed(t_q: int, t_k: int, device: str):
    """causal_mask, built once per size and device and read-only, since every call shares it
    (building it and its addend took 14 of a small attention's 110 us)."""
    return _read_only(causal_mask(t_q, t_k, device))


@functools.lru_cache(maxsize=32)
def _causal_addend(t_q: int, t_k: int, dtype, device: str):
    """The causal mask as the scores' addend (0 / -inf), cached the same way; None when every
    query sees every key (t_q <= 1: a decoding step), as additive_mask drops an all-true mask."""
    if t_q <= 1:
        return None
    return _read_only(_addend(get_backend(device).xp, dtype, _causal_allowed(t_q, t_k, device), None))


def _read_only(array):
    if hasattr(array, "setflags"):  # NumPy: a write into a shared mask fails loudly
        array.setflags(write=False)
    return array
