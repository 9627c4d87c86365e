"""Linear algebra: matmul (NumPy's rules for 1-D operands and batch dims) and linear."""
from __future__ import annotations


from ..dtypes import is_float
from ..errors import DTypeError, ShapeError
from ..ops import linalg as L
from ..shapes import broadcast_shape
from ..tensor import Tensor
from ._common import _pair


def _same_float_dtype(op, *operands):
    """A product of two different float dtypes is refused (as in PyTorch): it would silently
    run at the wider precision and cost the narrower side's speed and memory."""
    dtypes = [t.dtype for t in operands if isinstance(t, Tensor)]
    if all(d == dtypes[0] for d in dtypes):
        return
    if len({str(d) for d in dtypes if is_float(d)}) > 1:
        got = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in operands if isinstance(t, Tensor))
        raise DTypeError(f"{op}: operands must have the same float dtype, got {got}; convert one with .astype()")


def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands are promoted, batch dims broadcast."""
    _same_float_dtype("matmul", a, b)
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        which = "b.shape[-2]" if b.ndim > 1 else "b.shape[0]"
        raise ShapeError(f"matmul: cannot multiply shapes {a.shape} and {b.shape}: a.shape[-1]={k_a} but {which}={k_b}")
    try:
        broadcast_shape(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"matmul: batch dims of {a.shape} and {b.shape} cannot be broadcast together") from None
    if a.ndim == 1 and b.ndim == 1:
        return (a * b).sum()
    if a.ndim == 1:
        return L.MatMul.apply(a.reshape(1, k_a), b).squeeze(-2)
    if b.ndim == 1:
        return L.MatMul.apply(a, b.reshape(k_b, 1)).squeeze(-1)
    return L.MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    _same_float_dtype("linear", x, weight, *([bias] if bias is not None else []))
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the weight {weight.shape} expects {weight.shape[-1]}")
    if weight.ndim != 2 or x.ndim == 0 or (bias is not None and bias.shape != weight.shape[:1]):
        raise ShapeError(f"linear: expected weight (out, in), bias (out,) and input (..., in), got weight "
                         f"{weight.shape}, bias {None if bias is None else bias.shape}, input {x.shape}")
    if bias is None:
        return L.Linear.apply(x, weight)
    return L.Linear.apply(x, weight, bias)
