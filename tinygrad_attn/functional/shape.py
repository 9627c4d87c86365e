"""Shape functions and indexing: reshape, permute, transpose, expand, squeeze, unfold, cat,
stack, split, chunk, getitem, gather, embedding."""
from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from ..errors import DTypeError, ShapeError
from ..ops import nn as N
from ..ops import shape as S
from ..shapes import size_of
from ..tensor import Tensor
from ._common import _array_on, _axes, _axis


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    shape = _shape_arg(shape)
    known = [n for n in shape if n != -1]
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: only one dimension can be -1, got {shape}")
    size = size_of(known)
    if -1 in shape:
        if size == 0 or x.size % size:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}")
        shape = tuple(x.size // size if n == -1 else n for n in shape)
    elif size != x.size:
        raise ShapeError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape} ({size} elements)")
    if shape == x.shape:
        return x
    return S.Reshape.apply(x, shape=shape)


def flatten(x, start_axis=0, end_axis=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_axis % x.ndim, end_axis % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def permute(x, *axes):
    axes = _shape_arg(axes)
    if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ShapeError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    axes = tuple(a % x.ndim for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return S.Permute.apply(x, axes=axes)


def transpose(x, *axes):
    """Reverse the axes (no arguments), swap two axes (PyTorch style), or permute by 3 or more (NumPy style)."""
    axes = _shape_arg(axes)
    if not axes:
        return permute(x, *reversed(range(x.ndim)))
    if len(axes) == 2:  # two axes always swap (PyTorch), also on a 2-D tensor
        return swapaxes(x, *axes)
    return permute(x, *axes)


def swapaxes(x, axis1, axis2):
    order = list(range(x.ndim))
    a1, a2 = _axis("swapaxes", axis1, None, x.ndim), _axis("swapaxes", axis2, None, x.ndim)
    order[a1], order[a2] = order[a2], order[a1]
    return permute(x, *order)


def expand(x, *shape):
    """Broadcast to `shape` (-1 keeps a dim); a view, its gradient summed back."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: cannot expand shape {x.shape} to fewer dims {shape}")
    shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
    for i, n in enumerate(x.shape):
        if n != 1 and n != shape[lead + i]:
            raise ShapeError(f"expand: cannot broadcast shape {x.shape} to {shape}: dim {i} has size {n}")
    if shape == x.shape:
        return x
    return S.Expand.apply(x, shape=shape)


broadcast_to = expand


def squeeze(x, axis=None, dim=None):
    if dim is not None:
        axis = dim
    if axis is None:
        return x.reshape(tuple(n for n in x.shape if n != 1))
    axes = _axes("squeeze", axis, None, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, axis):
    if not -(x.ndim + 1) <= axis <= x.ndim:
        raise ShapeError(f"unsqueeze: axis {axis} is out of range for a tensor with {x.ndim} dims")
    axis = axis % (x.ndim + 1)
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


def unfold(x, dimension, size, step):
    """Every window of `size` elements, `step` apart, along `dimension`, as a new last axis:
    shape (..., (n - size) // step + 1, ..., size), a view (PyTorch's Tensor.unfold; not
    torch.nn.functional.unfold, which is im2col for convolutions)."""
    ax = _axis("unfold", dimension, None, x.ndim)
    n = x.shape[ax] if x.ndim else 1
    if not isinstance(size, (int, np.integer)) or not isinstance(step, (int, np.integer)) or size < 0 or step < 1:
        raise ValueError(f"unfold: size must be an int >= 0 and step an int >= 1, got size={size!r}, step={step!r}")
    if size > n:
        raise ShapeError(f"unfold: size {size} is larger than dimension {ax} of shape {x.shape} ({n})")
    if x.ndim == 0:  # PyTorch: a 0-d tensor unfolds as one element
        return S.Unfold.apply(x.reshape(1), axis=0, size=int(size), step=int(step))
    return S.Unfold.apply(x, axis=ax, size=int(size), step=int(step))


def cat(tensors: Sequence[Tensor], axis=0, dim=None):
    """Join tensors along an existing axis; all other dims must agree."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    first = tensors[0]
    ax = _axis("cat", axis, dim, first.ndim)
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(t.shape[i] != first.shape[i] for i in range(first.ndim) if i != ax):
            shapes = ", ".join(str(tuple(u.shape)) for u in tensors)
            raise ShapeError(f"cat: shapes {shapes} differ outside axis {ax}")
    if len(tensors) == 1:
        return first
    return S.Concatenate.apply(*tensors, axis=ax)


concatenate = cat


def stack(tensors: Sequence[Tensor], axis=0, dim=None):
    """Join tensors of equal shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    ax = dim if dim is not None else axis
    return cat([unsqueeze(t, ax) for t in tensors], axis=ax % (tensors[0].ndim + 1))


def split(x, split_size_or_sections, axis=0, dim=None):
    """Split along an axis into pieces of a given size (int) or of the given sizes (list)."""
    ax = _axis("split", axis, dim, x.ndim)
    n = x.shape[ax]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} add up to {builtins.sum(sizes)}, but axis {ax} of shape {x.shape} has {n}")
    lead = (slice(None),) * ax
    out, start = [], 0
    for size in sizes:
        out.append(getitem(x, lead + (slice(start, start + size),)))
        start += size
    return tuple(out)


def chunk(x, chunks, axis=0, dim=None):
    ax = _axis("chunk", axis, dim, x.ndim)
    return split(x, -(-x.shape[ax] // chunks), ax)


def _normalize_index(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        elif isinstance(i, list):
            i = x.backend.asarray(i)
            if i.size == 0:
                i = i.astype(np.int64)  # [] means "no rows" (as in NumPy), not a float index
        out.append(i)
    return tuple(out)


def getitem(x, index):
    """x[index] with slices, ints, None, Ellipsis and integer/boolean arrays; repeats accumulate gradient."""
    index = _normalize_index(x, index)
    try:
        return S.GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"getitem: index {index!r} does not fit a tensor of shape {x.shape}: {e}") from None


def gather(x, axis, index):
    """out[i][j] = x[i][index[i][j]] along `axis` (like torch.gather / np.take_along_axis)."""
    ax = _axis("gather", axis, None, x.ndim)
    idx = _array_on(x, index)
    if idx.ndim != x.ndim:
        raise ShapeError(f"gather: index has {idx.ndim} dims, x has {x.ndim} (shapes {idx.shape} and {x.shape})")
    _check_ids("gather", idx, x.shape[ax], x.backend)  # a negative index would silently wrap around
    xp = x.backend.xp
    grids = [xp.arange(n).reshape([-1 if d == i else 1 for d in range(idx.ndim)]) for i, n in enumerate(idx.shape)]
    grids[ax] = idx
    return getitem(x, tuple(grids))


def _check_ids(op, ids, n, backend, ignore=None):
    """Integer ids in [0, n) (entries equal to `ignore` aside). The dtype is known on the host
    and always checked; the values only where reading them is free or debug checks are on
    (backend.checks_values): on a GPU it would stop the host until the GPU caught up."""
    if ids.dtype.kind not in "iu":
        raise DTypeError(f"{op}: indices must be integers, got dtype {ids.dtype}")
    if not ids.size or not backend.checks_values():
        return
    counted = ids if ignore is None else ids[ids != ignore]
    if counted.size and (int(counted.min()) < 0 or int(counted.max()) >= n):
        raise IndexError(f"{op}: indices must lie in [0, {n}), got values in [{int(counted.min())}, {int(counted.max())}]")


def embedding(ids, weight, padding_idx=None):
    """Rows of `weight` (V, D) for integer `ids` (...); `padding_idx` rows receive no gradient."""
    ids = _array_on(weight, ids)
    _check_ids("embedding", ids, weight.shape[0], weight.backend)
    return N.Embedding.apply(weight, ids=ids, padding_idx=padding_idx)
