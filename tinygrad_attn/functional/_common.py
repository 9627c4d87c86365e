"""Helpers shared by the public functions: operands as tensors, axis arguments, masks and
indices as arrays, and the errors that name the op."""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import DeviceError, DTypeError, ShapeError
from ..tensor import Tensor, _is_float

# Python-number operands become constant tensors; the same few numbers (0.5, 1, eps, ...)
# recur in every step, so the constants are cached rather than rebuilt per op.
_SCALARS: dict = {}


def _like(x, like: Tensor) -> Tensor:
    """`x` as a Tensor on like's device; Python numbers and arrays take like's float dtype."""
    if isinstance(x, Tensor):
        return x
    backend = like.backend
    if isinstance(x, (int, float, bool)) and _is_float(like.dtype):
        key = (x, type(x), like.dtype, like.device)
        cached = _SCALARS.get(key)
        if cached is None:
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            cached = _SCALARS[key] = Tensor.wrap(backend.xp.asarray(x, dtype=like.dtype), like.device)
        return cached
    arr = backend.asarray(x)
    if arr.dtype == np.float64 and not hasattr(x, "dtype"):
        arr = arr.astype(like.dtype if _is_float(like.dtype) else np.float32)
    return Tensor.wrap(arr, like.device)


def _pair(a, b):
    if not isinstance(a, Tensor):
        a = _like(a, b)
    elif not isinstance(b, Tensor):
        b = _like(b, a)
    return a, b


def _broadcast_error(op, *tensors):
    shapes = " and ".join(str(tuple(t.shape)) for t in tensors)
    return ShapeError(f"{op}: shapes {shapes} cannot be broadcast together (NumPy rules: trailing dims must match or be 1)")


def _binary(cls, op, a, b):
    a, b = _pair(a, b)
    try:
        return cls.apply(a, b)
    except ValueError as e:
        if "broadcast" in str(e):
            raise _broadcast_error(op, a, b) from None
        raise


def _axes(op, axis, dim, ndim):
    """Normalize `axis` (or PyTorch's `dim`) into a sorted tuple of non-negative ints."""
    if dim is not None:
        axis = dim
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -builtins.max(ndim, 1) <= ax < builtins.max(ndim, 1):
            raise ShapeError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dims")
        out.append(int(ax) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else ()


def _axis(op, axis, dim, ndim):
    (ax,) = _axes(op, axis if dim is None else dim, None, ndim) or (0,)
    return ax


def _require_float(op, t):
    if not _is_float(t.dtype):
        raise DTypeError(f"{op}: expected a floating-point tensor, got dtype {t.dtype} with shape {t.shape}")


def _array_on(t: Tensor, value):
    """A raw array (mask, index) on t's device, from a Tensor, array or list."""
    if isinstance(value, Tensor):
        if value.device != t.device:
            raise DeviceError(f"mask/index on {value.device} used with a tensor on {t.device}")
        return value.data
    return t.backend.asarray(value)


def _bool_mask(op, t, mask):
    m = _array_on(t, mask)
    if m.dtype != np.bool_:
        raise DTypeError(f"{op}: mask must be boolean, got dtype {m.dtype} (mask {m.shape}, tensor {t.shape})")
    require_broadcast(op, "mask", m.shape, "the tensor's shape", t.shape)
    return m


def require_broadcast(op, what, shape, target_what, target_shape) -> None:
    """A ShapeError naming the op and both shapes unless `shape` broadcasts to `target_shape`."""
    try:
        np.broadcast_shapes(tuple(shape), tuple(target_shape))
    except ValueError:
        raise ShapeError(f"{op}: {what} of shape {tuple(shape)} does not broadcast to "
                         f"{target_what} {tuple(target_shape)}") from None
