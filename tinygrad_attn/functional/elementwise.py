"""Elementwise functions: arithmetic, unary maths, activations, where/masked_fill/clip, comparisons."""
from __future__ import annotations

from ..dtypes import is_float, result_dtype
from ..errors import DTypeError, ShapeError
from ..ops import elementwise as E
from ..tensor import Tensor
from ._common import _as_dtype, _binary, _bool_mask, _broadcast_error, _floating, _pair


def add(a, b): return _binary(E.Add, "add", a, b)
def sub(a, b): return _binary(E.Sub, "sub", a, b)
def mul(a, b): return _binary(E.Mul, "mul", a, b)
def div(a, b, rounding_mode=None):
    """a / b (integers give float32); rounding_mode "trunc" or "floor" rounds the quotient, as torch.div."""
    if rounding_mode is not None:
        from .maths import rounded_div
        return rounded_div(a, b, rounding_mode)
    return _binary(E.Div, "div", a, b, float_op=True)
def neg(a): return E.Neg.apply(a)


def pow(a, exponent):
    """a ** exponent; a Python-number exponent uses the cheaper PowScalar."""
    if isinstance(a, Tensor) and isinstance(exponent, (int, float)):
        if not is_float(a.dtype) and (isinstance(exponent, float) or exponent < 0):
            a = _floating(a)  # an integer to a fractional or negative power is a float, as in PyTorch
        return E.PowScalar.apply(a, exponent=exponent)
    return _binary(E.Pow, "pow", a, exponent)


def exp(x): return E.Exp.apply(_floating(x))
def log(x): return E.Log.apply(_floating(x))
def sqrt(x): return E.Sqrt.apply(_floating(x))
def tanh(x): return E.Tanh.apply(_floating(x))
def sigmoid(x): return E.Sigmoid.apply(_floating(x))
def relu(x): return E.Relu.apply(x)
def abs(x): return E.Abs.apply(x)
def erf(x): return E.Erf.apply(_floating(x))


def gelu(x, approximate="tanh"):
    """GELU: approximate="tanh" (GPT-2, BERT) or "none" (exact, x * Phi(x))."""
    if approximate == "tanh":
        return E.GeluTanh.apply(_floating(x))
    if approximate == "none":
        return E.GeluExact.apply(_floating(x))
    raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")


def maximum(a, b):
    """Elementwise max; at ties each side gets half the gradient."""
    return _binary(E.Maximum, "maximum", a, b)


def minimum(a, b):
    """Elementwise min; at ties each side gets half the gradient."""
    return _binary(E.Minimum, "minimum", a, b)


def clip(x, min=None, max=None):
    """Clamp into [min, max]; the gradient is 1 inside (ends included), 0 outside."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    x = _as_dtype(x, result_dtype(x, *(b for b in (min, max) if b is not None)), x)
    return E.Clip.apply(x, low=min, high=max)


clamp = clip


def where(cond, a, b):
    """Elements of `a` where `cond` is True, else of `b` (cond is constant, a and b broadcast)."""
    like = a if isinstance(a, Tensor) else b
    if not isinstance(like, Tensor):
        raise TypeError("where: at least one of a and b must be a Tensor")
    a, b = _pair(a, b)
    c = _bool_mask("where", like, cond)
    try:
        return E.Where.apply(a, b, cond=c)
    except ValueError:
        raise ShapeError(f"where: shapes cond {c.shape}, a {a.shape}, b {b.shape} cannot be broadcast together") from None


def masked_fill(x, mask, value):
    """x with `value` where `mask` is True (mask broadcasts to x); filled positions get no gradient."""
    return E.MaskedFill.apply(x, mask=_bool_mask("masked_fill", x, mask), value=value)


def compare(a, b, how: str) -> Tensor:
    """Elementwise comparison (not differentiated): a boolean Tensor."""
    a, b = _pair(a, b)
    xp = a.backend.xp
    try:
        return Tensor.wrap(getattr(xp, how)(a.data, b.data), a.device)
    except ValueError:
        raise _broadcast_error(how, a, b) from None


def logical_not(a: Tensor) -> Tensor:
    """True where `a` is False or zero (a boolean Tensor, for any dtype)."""
    return Tensor.wrap(a.backend.xp.logical_not(a.data), a.device)


def invert(a: Tensor) -> Tensor:
    """`~a`: logical not of a boolean tensor, bitwise not of an integer one (as in PyTorch)."""
    if a.dtype.kind == "b":
        return logical_not(a)
    if a.dtype.kind not in "iu":
        raise DTypeError(f"invert (~): needs a boolean or integer tensor, got dtype {a.dtype} with shape {a.shape}; "
                         "use F.logical_not for a float tensor")
    return Tensor.wrap(a.backend.xp.invert(a.data), a.device)
