"""Reductions and scans beyond sum/max/mean: prod, std and std_mean, any, all, argmin, cumsum,
cumprod, logcumsumexp, cummax, cummin, sort, argsort, topk, softmin, normalize. Values picked
by sort/topk/cummax/cummin are gathered, so their gradient flows to the selected entries."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ops import reduce as R
from ..tensor import Tensor
from ._common import _axes, _axis, _floating
from .elementwise import clip, exp, log
from .nn import softmax
from .reduce import sum, var, var_mean
from .maths import logaddexp
from .shape import cat, gather


def _index_tensor(x, array):
    return Tensor.wrap(array, x.device)


def prod(x, axis=None, keepdims=False, dim=None):
    """Product over one axis (or all), exact gradients with zeros too (see cumprod)."""
    if dim is not None:
        axis = dim
    if axis is None:
        out = cumprod(x.reshape(-1), 0)[-1] if x.size else Tensor.wrap(x.backend.xp.ones((), x.dtype), x.device)
        return out.reshape((1,) * x.ndim) if keepdims else out
    ax = _axis("prod", axis, None, x.ndim)
    out = cumprod(x, ax)[(slice(None),) * ax + (slice(-1, None),)]
    return out if keepdims else out.squeeze(ax)


def std(x, axis=None, keepdims=False, ddof=0, dim=None):
    """Standard deviation: sqrt(var) (ddof 0: population, 1: sample)."""
    return var(x, axis, keepdims, ddof, dim=dim).sqrt()


def std_mean(x, axis=None, keepdims=False, ddof=0, dim=None):
    """(std, mean) over axes, the mean computed once for both (ddof as in std; PyTorch's default is 1)."""
    variance, mu = var_mean(x, axis, keepdims, ddof, dim=dim)
    return variance.sqrt(), mu


def any(x, axis=None, keepdims=False, dim=None):  # noqa: A001
    """True where some element along the axes is nonzero (a boolean tensor)."""
    axes = _axes("any", axis, dim, x.ndim)
    return Tensor.wrap(x.backend.xp.any(x.data, axis=axes, keepdims=keepdims), x.device)


def all(x, axis=None, keepdims=False, dim=None):  # noqa: A001
    """True where every element along the axes is nonzero (a boolean tensor)."""
    axes = _axes("all", axis, dim, x.ndim)
    return Tensor.wrap(x.backend.xp.all(x.data, axis=axes, keepdims=keepdims), x.device)


def argmin(x, axis=None, keepdims=False, dim=None):
    xp = x.backend.xp
    ax = dim if dim is not None else axis
    return Tensor.wrap(xp.argmin(x.data, axis=ax, keepdims=keepdims), x.device)


def cumsum(x, axis=0, dim=None):
    ax = _axis("cumsum", axis, dim, x.ndim)
    return R.Cumsum.apply(x if x.ndim else x.reshape(1), axis=ax).reshape(x.shape)


def cumprod(x, axis=0, dim=None):
    ax = _axis("cumprod", axis, dim, x.ndim)
    return R.Cumprod.apply(x if x.ndim else x.reshape(1), axis=ax).reshape(x.shape)


def logcumsumexp(x, axis=0, dim=None):
    """log(cumsum(exp(x))) along `axis`, finite wherever the answer is.

    One shift for the whole axis (its max) underflows: a row [0, 174] in float32 gave -inf for
    0, since exp(-174) is 0 there. So each position combines with the one `shift` before it by
    logaddexp, whose shift is per pair, for shift = 1, 2, 4, ... (Hillis-Steele, log2(n) steps of
    public ops: its gradient and second derivative come with them)."""
    x = _floating(x)
    ax = _axis("logcumsumexp", axis, dim, x.ndim)
    if x.ndim == 0:
        return x
    n, shift, y = x.shape[ax], 1, x

    def along(start, stop):
        return (slice(None),) * ax + (slice(start, stop),)
    while shift < n:
        y = cat([y[along(0, shift)], logaddexp(y[along(shift, n)], y[along(0, n - shift)])], ax)
        shift *= 2
    return y


def cummax(x, axis=0, dim=None):
    """(values, indices): the running max along `axis` and where it was taken. At ties the latest
    position wins and a NaN, once seen, is the max (as in PyTorch); the gradient goes to those positions."""
    return _running_extreme("cummax", x, axis, dim, x.backend.xp.maximum)


def cummin(x, axis=0, dim=None):
    """(values, indices): the running min along `axis`, as cummax."""
    return _running_extreme("cummin", x, axis, dim, x.backend.xp.minimum)


def _running_extreme(op, x, axis, dim, pick):
    if x.ndim == 0:
        return x, _index_tensor(x, x.backend.xp.zeros((), dtype=np.int64))
    ax = _axis(op, axis, dim, x.ndim)
    xp, data = x.backend.xp, x.data
    running = _scan(xp, pick, data, ax)
    # a position is where the running extreme was last taken when it holds that extreme (ties: the
    # latest such); the index is then the running max of those positions
    positions = xp.arange(x.shape[ax], dtype=np.int64).reshape((-1,) + (1,) * (x.ndim - 1 - ax))
    taken = (data == running) | xp.isnan(data) if x.dtype.kind == "f" else data == running
    idx = _scan(xp, xp.maximum, xp.where(taken, positions, 0), ax)
    return gather(x, ax, idx), _index_tensor(x, idx)


def _scan(xp, pick, a, axis):
    """The running pick (xp.maximum or xp.minimum) along `axis`, in log2(n) whole-array steps
    (Hillis-Steele), the same on every backend."""
    n, shift = a.shape[axis], 1
    lead = (slice(None),) * axis
    while shift < n:
        a = xp.concatenate([a[lead + (slice(0, shift),)], pick(a[lead + (slice(shift, None),)],
                                                            a[lead + (slice(0, n - shift),)])], axis=axis)
        shift *= 2
    return a


def argsort(x, axis=-1, descending=False, dim=None):
    """Indices that sort along `axis` (stable: equal values keep their order; NaN sorts as the largest)."""
    ax = _axis("argsort", axis, dim, x.ndim)
    xp = x.backend.xp
    if x.ndim == 0:
        return _index_tensor(x, xp.zeros((), dtype=np.int64))
    if not descending:
        return _index_tensor(x, xp.argsort(x.data, axis=ax, kind="stable"))
    # descending, without negating (which breaks bool, unsigned and the most negative integer):
    # the ascending stable order of the reversed axis, read backwards, keeps equal values first to last
    n = x.shape[ax]
    backwards = xp.flip(xp.argsort(xp.flip(x.data, axis=ax), axis=ax, kind="stable"), axis=ax)
    return _index_tensor(x, (n - 1) - backwards)


def sort(x, axis=-1, descending=False, dim=None):
    """(values, indices) sorted along `axis`; the values' gradient flows back to where they came from."""
    idx = argsort(x, axis, descending, dim)
    if x.ndim == 0:
        return x, idx
    return gather(x, _axis("sort", axis, dim, x.ndim), idx), idx


def topk(x, k, axis=-1, largest=True, sorted=True, dim=None):  # noqa: A002
    """(values, indices) of the k largest (or smallest) along `axis`; gradient to the selected entries."""
    ax = _axis("topk", axis, dim, x.ndim)
    n = x.shape[ax] if x.ndim else 1
    if not 0 <= k <= n:
        raise ShapeError(f"topk: k={k} is out of range for axis {ax} of shape {x.shape}")
    idx = argsort(x, ax, descending=largest).data
    idx = idx[(slice(None),) * ax + (slice(0, k),)]
    return gather(x, ax, idx), _index_tensor(x, idx)


def softmin(x, axis=-1, dim=None):
    """softmax(-x)."""
    return softmax(-x, axis, dim=dim)


def normalize(x, p=2.0, axis=1, eps=1e-12, dim=None):
    """x / max(||x||_p, eps) along `axis` (PyTorch's default axis is 1)."""
    ax = _axis("normalize", axis, dim, x.ndim)
    # clamped before the root: max(norm, eps) all the same, and a zero vector gets gradient 0, not nan
    norm = clip(sum(x.abs() ** p, ax, keepdims=True), min=eps ** p) ** (1.0 / p)
    return x / norm
