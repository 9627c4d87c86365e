"""Neural-network functions: softmax, log_softmax, cross_entropy, dropout, layer_norm."""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..ops import nn as N
from ..tensor import Tensor
from ._common import _array_on, _axis, _bool_mask, _require_float
from .shape import _check_ids


def softmax(x, axis=-1, mask=None, dim=None):
    """Stable softmax. With a boolean `mask` (True = keep), masked entries are 0 and
    a fully masked row is all zeros (zero gradient), never NaN."""
    _require_float("softmax", x)
    ax = _axis("softmax", axis, dim, x.ndim)
    m = _bool_mask("softmax", x, mask) if mask is not None else None
    return N.Softmax.apply(x, axis=ax, mask=m)


def log_softmax(x, axis=-1, dim=None):
    _require_float("log_softmax", x)
    return N.LogSoftmax.apply(x, axis=_axis("log_softmax", axis, dim, x.ndim))


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross entropy of integer targets from logits (..., C), fused with log_softmax.

    Positions whose target equals `ignore_index` are skipped; "mean" divides by the
    number of counted positions. `label_smoothing` eps mixes eps/C into the target.
    Float targets shaped like the logits are probabilities (soft labels), as in PyTorch.
    """
    _require_float("cross_entropy", logits)
    if getattr(targets, "dtype", np.dtype(np.int64)).kind == "f" and tuple(targets.shape) == logits.shape:
        from .losses import cross_entropy_soft
        return cross_entropy_soft(logits, targets, label_smoothing, reduction)
    tgt = targets if isinstance(targets, Tensor) else Tensor(_array_on(logits, targets), device=logits.device)
    if tgt.dtype.kind not in "iu":
        raise DTypeError(f"cross_entropy: targets must be integer class ids, got dtype {tgt.dtype}")
    if tgt.shape != logits.shape[:-1]:
        raise ShapeError(f"cross_entropy: logits {logits.shape} need targets of shape {logits.shape[:-1]}, got {tgt.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}")
    _check_ids("cross_entropy", tgt.data, logits.shape[-1], logits.backend, ignore=ignore_index)
    return N.CrossEntropy.apply(logits, tgt, ignore_index=ignore_index,
                                label_smoothing=float(label_smoothing), reduction=reduction)


def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability p and scale the rest by 1/(1-p) (seeded by manual_seed)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return x * Tensor.wrap(dropout_keep(x, x.shape, p), x.device)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalize over the last axis, then scale and shift (weight 1 and bias 0 when not given)."""
    _require_float("layer_norm", x)
    d = x.shape[-1:]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != d:
            raise ShapeError(f"layer_norm: {name} has shape {p.shape}, expected {d} for input {x.shape}")
    xp = x.backend.xp
    weight = weight if weight is not None else Tensor.wrap(xp.ones(d, dtype=x.dtype), x.device)
    bias = bias if bias is not None else Tensor.wrap(xp.zeros(d, dtype=x.dtype), x.device)
    return N.LayerNorm.apply(x, weight, bias, eps=eps)


def dropout_keep(like: Tensor, shape, p: float, training: bool = True):
    """Dropout's multipliers as an array: 0 with probability p, else 1/(1-p) (None when
    dropout is off). The same draws `dropout` makes for a tensor of this shape."""
    if not training or p == 0.0:
        return None
    keep = like.backend.random_uniform(tuple(shape), np.float32) >= p
    return (keep * (1.0 / (1.0 - p))).astype(like.dtype)
