"""Losses beyond cross_entropy, composed from primitives: nll_loss, binary_cross_entropy
(with and without logits), mse_loss, l1_loss, smooth_l1_loss, huber_loss, and cross entropy
against probability targets. Each takes reduction "mean" (default), "sum" or "none"."""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._common import _array_on, _like, _require_float
from .elementwise import abs, clip, log, where
from .activations import softplus
from .nn import log_softmax
from .shape import _check_ids, gather


def _reduce(op, loss, reduction, count=None):
    """`count`: what "mean" divides by (default: every position), a number or an array that
    stays on the device (int() of it would make the host wait for a GPU)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        if count is not None and not isinstance(count, (int, np.integer)):
            xp = loss.backend.xp
            inverse = (1.0 / xp.maximum(count, 1)).astype(loss.dtype)
            return loss.sum() * Tensor.wrap(inverse, loss.device)
        return loss.sum() * (1.0 / max(loss.size if count is None else count, 1))
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _pair_shapes(op, input, target):
    target = _like(target, input)
    if target.shape != input.shape:
        raise ShapeError(f"{op}: input {input.shape} and target {target.shape} must have the same shape")
    return target


def nll_loss(log_probs, targets, ignore_index=-100, reduction="mean"):
    """-log_probs[..., target] from log-probabilities (..., C); `ignore_index` positions count for nothing."""
    _require_float("nll_loss", log_probs)
    t = _array_on(log_probs, targets)
    if t.dtype.kind not in "iu":
        raise DTypeError(f"nll_loss: targets must be integer class ids, got dtype {t.dtype}")
    if t.shape != log_probs.shape[:-1]:
        raise ShapeError(f"nll_loss: log_probs {log_probs.shape} need targets of shape {log_probs.shape[:-1]}, got {t.shape}")
    valid = t != ignore_index
    _check_ids("nll_loss", t, log_probs.shape[-1], log_probs.backend, ignore=ignore_index)
    xp = log_probs.backend.xp
    picked = gather(log_probs, log_probs.ndim - 1, xp.where(valid, t, 0)[..., None])[..., 0]
    loss = where(valid, -picked, 0.0)
    return _reduce("nll_loss", loss, reduction, valid.sum())


def cross_entropy_soft(logits, target_probs, label_smoothing=0.0, reduction="mean"):
    """Cross entropy against a probability distribution per position (targets shaped like logits)."""
    target = _pair_shapes("cross_entropy", logits, target_probs)
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / logits.shape[-1]
    loss = -(target * log_softmax(logits, -1)).sum(-1)
    return _reduce("cross_entropy", loss, reduction)


def binary_cross_entropy(probs, target, weight=None, reduction="mean"):
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch does (so p of 0 or 1 is finite)."""
    _require_float("binary_cross_entropy", probs)
    target = _pair_shapes("binary_cross_entropy", probs, target)
    with np.errstate(divide="ignore"):  # log(0) = -inf, then clamped
        loss = -(target * clip(log(probs), min=-100.0) + (1 - target) * clip(log(1 - probs), min=-100.0))
    if weight is not None:
        loss = loss * weight
    return _reduce("binary_cross_entropy", loss, reduction)


def binary_cross_entropy_with_logits(logits, target, weight=None, pos_weight=None, reduction="mean"):
    """binary_cross_entropy(sigmoid(x), y) computed as softplus(x) - y x: finite for logits of +-1e4."""
    _require_float("binary_cross_entropy_with_logits", logits)
    target = _pair_shapes("binary_cross_entropy_with_logits", logits, target)
    if pos_weight is None:
        loss = softplus(logits) - target * logits
    else:  # -(pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))
        loss = pos_weight * target * softplus(-logits) + (1 - target) * softplus(logits)
    if weight is not None:
        loss = loss * weight
    return _reduce("binary_cross_entropy_with_logits", loss, reduction)


def mse_loss(input, target, reduction="mean"):
    diff = input - _pair_shapes("mse_loss", input, target)
    return _reduce("mse_loss", diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    return _reduce("l1_loss", abs(input - _pair_shapes("l1_loss", input, target)), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target)."""
    d = input - _pair_shapes("smooth_l1_loss", input, target)
    a = abs(d)
    if beta == 0:
        return _reduce("smooth_l1_loss", a, reduction)
    return _reduce("smooth_l1_loss", where(a.data < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta): smooth_l1_loss scaled by delta."""
    d = input - _pair_shapes("huber_loss", input, target)
    a = abs(d)
    return _reduce("huber_loss", where(a.data < delta, d * d * 0.5, (a - 0.5 * delta) * delta), reduction)

