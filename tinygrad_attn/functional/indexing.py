"""Indexing beyond getitem/gather: scatter, scatter_add (gradients to the input and to the
source), masked_select, one_hot, nonzero."""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..ops import shape as S
from ..shapes import broadcast_shape
from ..tensor import Tensor
from ._common import _array_on, _as_dtype, _axis, _bool_mask
from .elementwise import masked_fill
from .shape import _check_ids, getitem


def _scatter_parts(op, x, axis, index, src):
    """(index grids, the part of src they take) for scatter/scatter_add, checked."""
    ax = _axis(op, axis, None, x.ndim)
    idx = _array_on(x, index)
    _check_ids(op, idx, x.shape[ax], x.backend)
    if idx.ndim != x.ndim:
        raise ShapeError(f"{op}: index has {idx.ndim} dims, x has {x.ndim} (shapes {idx.shape} and {x.shape})")
    if not isinstance(src, Tensor):
        src = Tensor.wrap(x.backend.xp.full(idx.shape, src, dtype=x.dtype), x.device)
    if any(i > n for i, n in zip(idx.shape, src.shape)) or any(
            i > n for d, (i, n) in enumerate(zip(idx.shape, x.shape)) if d != ax):
        raise ShapeError(f"{op}: index {idx.shape} is larger than src {src.shape} or, off axis {ax}, than x {x.shape}")
    xp = x.backend.xp
    grids = [xp.arange(n).reshape([-1 if d == i else 1 for d in range(idx.ndim)]) for i, n in enumerate(idx.shape)]
    grids[ax] = idx
    grids = tuple(xp.broadcast_to(g, idx.shape) for g in grids)
    part = src if src.shape == idx.shape else getitem(src, tuple(slice(0, n) for n in idx.shape))
    return grids, _as_dtype(part, x.dtype, x)


def scatter_add(x, axis, index, src):
    """x with src added at index along `axis` (repeats accumulate): out[..., index[i], ...] += src[i].
    The gradient reaches x unchanged and src as the gather of the output's gradient."""
    grids, part = _scatter_parts("scatter_add", x, axis, index, src)
    return x + S.ScatterAdd.apply(part, index=grids, shape=x.shape)


def scatter(x, axis, index, src):
    """x with src written at index along `axis` (src may be a number). Each target must be hit at
    most once (PyTorch leaves repeats undefined; here they are an error). Overwritten entries of x
    get no gradient."""
    grids, part = _scatter_parts("scatter", x, axis, index, src)
    xp = x.backend.xp
    hits = xp.zeros(x.shape, dtype=np.int64)
    x.backend.scatter_add(hits, grids, xp.ones(grids[0].shape, dtype=np.int64))
    if grids[0].size and int(hits.max()) > 1:
        raise ValueError("scatter: an index repeats along the axis, so the result would depend on the order of "
                         "writes; use scatter_add to accumulate")
    return masked_fill(x, hits > 0, 0) + S.ScatterAdd.apply(part, index=grids, shape=x.shape)


def masked_select(x, mask):
    """The entries of x where the boolean mask (broadcasting to x) is True, as a 1-D tensor."""
    m = _bool_mask("masked_select", x, mask)
    shape = broadcast_shape(x.shape, m.shape)
    if shape != x.shape:
        x = x.expand(shape)
    return getitem(x, x.backend.xp.broadcast_to(m, shape))


def one_hot(ids, num_classes=-1):
    """int64 (..., num_classes) with 1 at each id (num_classes = max id + 1 when -1)."""
    ids = ids if isinstance(ids, Tensor) else Tensor(ids)
    if ids.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: ids must be integers, got dtype {ids.dtype} with shape {ids.shape}")
    xp = ids.backend.xp
    n = int(ids.data.max()) + 1 if num_classes == -1 and ids.size else max(num_classes, 0)
    _check_ids("one_hot", ids.data, n, ids.backend)
    return Tensor.wrap((ids.data[..., None] == xp.arange(n)).astype(np.int64), ids.device)


def nonzero(x, as_tuple=False):
    """Indices of the nonzero entries: an int64 (count, ndim) tensor, or one 1-D tensor per axis."""
    xp = x.backend.xp
    found = xp.nonzero(x.data)
    if as_tuple:
        return tuple(Tensor.wrap(i.astype(np.int64), x.device) for i in found)
    return Tensor.wrap(xp.stack(found, axis=-1).astype(np.int64) if found else xp.zeros((0, 0), np.int64), x.device)
