"""Reductions over axes: sum, mean, max, min, var and var_mean, logsumexp, argmax."""
from __future__ import annotations

import numpy as np

from ..dtypes import is_half
from ..errors import ShapeError
from ..ops import reduce as R
from ..shapes import size_of
from ..tensor import Tensor
from ._common import _axes
from .convert import cast


def sum(x, axis=None, keepdims=False, dim=None):
    return R.Sum.apply(x, axis=_axes("sum", axis, dim, x.ndim), keepdims=keepdims)


def mean(x, axis=None, keepdims=False, dim=None):
    axes = _axes("mean", axis, dim, x.ndim)
    count = size_of(x.shape[a] for a in axes)
    if count == 0:
        raise ShapeError(f"mean: reducing axes {axes} of shape {x.shape} would average over no elements")
    if is_half(x.dtype):  # the sum of a float16 row overflows long before its mean does
        return cast(R.Sum.apply(cast(x, np.float32), axis=axes, keepdims=keepdims) * (1.0 / count), x.dtype)
    return R.Sum.apply(x, axis=axes, keepdims=keepdims) * (1.0 / count)


def max(x, axis=None, keepdims=False, dim=None):
    """Max over axes. Ties: the gradient is shared evenly among the maximal elements."""
    axes = _axes("max", axis, dim, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"max: cannot take the max over an empty axis of shape {x.shape}")
    return R.Max.apply(x, axis=axes, keepdims=keepdims)


def min(x, axis=None, keepdims=False, dim=None):
    """Min over axes; ties share the gradient evenly."""
    axes = _axes("min", axis, dim, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"min: cannot take the min over an empty axis of shape {x.shape}")
    return R.Min.apply(x, axis=axes, keepdims=keepdims)


def var(x, axis=None, keepdims=False, ddof=0, dim=None):
    """Variance over axes with `ddof` (0: population, 1: sample)."""
    return var_mean(x, axis, keepdims, ddof, dim=dim)[0]


def var_mean(x, axis=None, keepdims=False, ddof=0, dim=None):
    """(variance, mean) over axes, the mean computed once for both (ddof as in var)."""
    axes = _axes("var", axis, dim, x.ndim)
    count = size_of(x.shape[a] for a in axes)
    if count - ddof <= 0:
        raise ShapeError(f"var: {count} elements over axes {axes} with ddof={ddof} leave no degrees of freedom")
    if is_half(x.dtype):  # squares of float16 overflow: the statistics are taken in float32
        return tuple(cast(s, x.dtype) for s in var_mean(cast(x, np.float32), axes, keepdims, ddof))
    mu = mean(x, axes, keepdims=True)
    centered = x - mu
    variance = sum(centered * centered, axes, keepdims) * (1.0 / (count - ddof))
    return variance, (mu if keepdims else mu.reshape(variance.shape))


def logsumexp(x, axis=None, keepdims=False, dim=None):
    """log(sum(exp(x))) over axes, stable for large |x|."""
    return R.LogSumExp.apply(x, axis=_axes("logsumexp", axis, dim, x.ndim), keepdims=keepdims)


def argmax(x, axis=None, keepdims=False, dim=None):
    xp = x.backend.xp
    ax = dim if dim is not None else axis
    return Tensor.wrap(xp.argmax(x.data, axis=ax, keepdims=keepdims), x.device)
