"""Helpers shared by the public functions: operands as tensors, axis arguments, masks and
indices as arrays, and the errors that name the op."""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import DeviceError, DTypeError, GraphError, ShapeError
from ..dtypes import DEFAULT_FLOAT, float_dtype, is_float, result_dtype
from ..ops import convert as C
from ..shapes import broadcast_shape
from ..tensor import Tensor

# Python-number operands become constant tensors; the same few numbers (0.5, 1, eps, ...)
# recur in every step, so the constants are cached rather than rebuilt per op.
_SCALARS: dict = {}


def _constant(x, dtype, like: Tensor) -> Tensor:
    """A Python number, NumPy scalar, list or array as a constant Tensor of `dtype` on like's device."""
    backend = like.backend
    if isinstance(x, (int, float, bool)):
        key = (x, type(x), dtype, like.device)
        cached = _SCALARS.get(key)
        if cached is None:
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            cached = _SCALARS[key] = Tensor.wrap(backend.xp.asarray(x, dtype=dtype), like.device)
        return cached
    arr = backend.asarray(x)
    if arr.dtype.kind not in "biuf":  # None, strings, objects: never a silent NaN or a NumPy traceback
        raise DTypeError(f"an operand of type {type(x).__name__} (dtype {arr.dtype}) beside a {like.dtype} "
                         f"tensor of shape {tuple(like.shape)}: expected a Tensor, a number or a numeric array")
    return Tensor.wrap(arr if arr.dtype == dtype else arr.astype(dtype), like.device)


def _as_dtype(x, dtype, like: Tensor) -> Tensor:
    """An operand as a Tensor of `dtype`: a tensor of another dtype goes through Cast, whose
    backward casts the gradient back (so a gradient keeps its leaf's dtype)."""
    if not isinstance(x, Tensor):
        return _constant(x, dtype, like)
    return x if x.dtype == dtype else C.Cast.apply(x, dtype=dtype)


def _like(x, like: Tensor) -> Tensor:
    """`x` as a Tensor on like's device, promoted with like by the rules of dtypes.py."""
    return x if isinstance(x, Tensor) else _constant(x, result_dtype(like, x), like)


def _operands(*xs, float_op=False):
    """The operands of one elementwise op as Tensors of one dtype (dtypes.result_dtype;
    a float op takes integers and bools as float32)."""
    first = xs[0]
    if all(isinstance(x, Tensor) and x.dtype == first.dtype for x in xs):
        dtype = first.dtype  # the common case, decided without the rules
    else:
        dtype = result_dtype(*xs)
    if float_op:
        dtype = float_dtype(dtype)
    like = next((x for x in xs if isinstance(x, Tensor)), None)
    if like is None:
        raise DTypeError(f"expected at least one Tensor among the operands, got "
                         f"({', '.join(type(x).__name__ for x in xs)}); wrap arrays in Tensor(...) first")
    return tuple(_as_dtype(x, dtype, like) for x in xs)


def _pair(a, b, float_op=False):
    """_operands for two, with the common cases first (this runs for every arithmetic op)."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            if a.dtype == b.dtype and (not float_op or a.dtype.kind == "f"):
                return a, b
        elif type(b) in (int, float) and a.dtype.kind == "f":  # a Python number takes a float tensor's dtype
            return a, _constant(b, a.dtype, a)
    elif type(a) in (int, float) and isinstance(b, Tensor) and b.dtype.kind == "f":
        return _constant(a, b.dtype, b), b
    return _operands(a, b, float_op=float_op)


def _floating(x: Tensor) -> Tensor:
    """x for a float op: integers and bools become the default float (float32)."""
    return x if is_float(x.dtype) else C.Cast.apply(x, dtype=DEFAULT_FLOAT)


def _broadcast_error(op, *tensors):
    shapes = " and ".join(str(tuple(t.shape)) for t in tensors)
    return ShapeError(f"{op}: shapes {shapes} cannot be broadcast together (NumPy rules: trailing dims must match or be 1)")


def _binary(cls, op, a, b, float_op=False):
    a, b = _pair(a, b, float_op)
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
    if not is_float(t.dtype):
        raise DTypeError(f"{op}: expected a floating-point tensor, got dtype {t.dtype} with shape {t.shape}")


def _array_on(t: Tensor, value):
    """A raw array (mask, index) on t's device, from a Tensor, array or list."""
    if isinstance(value, Tensor):
        if value.device != t.device:
            raise DeviceError(f"mask/index on {value.device} used with a tensor on {t.device}")
        if value.requires_grad:  # it is read as a constant: a gradient would silently be dropped
            raise GraphError(f"a mask or index of shape {value.shape} ({value.dtype}) requires grad, but it is used "
                             "as a constant here and would get no gradient; pass .detach() if that is what you mean")
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
        broadcast_shape(shape, target_shape)
    except ValueError:
        raise ShapeError(f"{op}: {what} of shape {tuple(shape)} does not broadcast to "
                         f"{target_what} {tuple(target_shape)}") from None
