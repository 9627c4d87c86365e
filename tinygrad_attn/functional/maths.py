"""More elementwise maths: trigonometry and the inverse hyperbolic functions, rounding, copysign,
tests for nan/inf and isclose, other logs and exponentials, logaddexp, lerp, and the
integer-style divisions (//, %, fmod)."""
from __future__ import annotations

import math

from ..ops import unary as U
from ..tensor import Tensor
from ._common import _broadcast_error, _floating, _operands, _pair
from .elementwise import div, exp, log, sqrt


def sin(x): return U.Sin.apply(_floating(x))
def cos(x): return U.Cos.apply(_floating(x))
def tan(x): return U.Tan.apply(_floating(x))
def asin(x): return U.Asin.apply(_floating(x))
def acos(x): return U.Acos.apply(_floating(x))
def atan(x): return U.Atan.apply(_floating(x))
def asinh(x): return U.Asinh.apply(_floating(x))
def acosh(x): return U.Acosh.apply(_floating(x))
def atanh(x): return U.Atanh.apply(_floating(x))


def copysign(a, b):
    """|a| with the sign of b (integers give float32, as in PyTorch); the gradient reaches a only."""
    a, b = _pair(a, b, float_op=True)
    try:
        return U.Copysign.apply(a, b)
    except ValueError:
        raise _broadcast_error("copysign", a, b) from None


def sinh(x):
    e = exp(_floating(x))
    return (e - 1 / e) * 0.5


def cosh(x):
    e = exp(_floating(x))
    return (e + 1 / e) * 0.5


def _piecewise(x, how):
    # integers are already whole: the result is x itself, as in PyTorch
    return x if x.dtype.kind in "iub" else U.PiecewiseConstant.apply(x, how=how)


def floor(x): return _piecewise(x, "floor")
def ceil(x): return _piecewise(x, "ceil")
def round(x): return _piecewise(x, "rint")  # noqa: A001  (half to even, as PyTorch and NumPy)
def trunc(x): return _piecewise(x, "trunc")


def sign(x):
    """-1, 0 or 1; its gradient is 0."""
    return U.PiecewiseConstant.apply(x, how="sign") if x.dtype.kind != "b" else x


def _test(x, how):
    return Tensor.wrap(getattr(x.backend.xp, how)(x.data), x.device)


def isnan(x): return _test(x, "isnan")
def isinf(x): return _test(x, "isinf")
def isfinite(x): return _test(x, "isfinite")


def isclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """|a - b| <= atol + rtol |b| elementwise (a boolean tensor, not differentiated), as torch.isclose."""
    if rtol < 0 or atol < 0:
        raise ValueError(f"isclose: rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    a, b = _pair(a, b)
    try:
        return Tensor.wrap(a.backend.xp.isclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan), a.device)
    except ValueError:
        raise _broadcast_error("isclose", a, b) from None


def log2(x): return log(x) * (1 / math.log(2))
def log10(x): return log(x) * (1 / math.log(10))
def exp2(x): return exp(_floating(x) * math.log(2))
def rsqrt(x): return 1 / sqrt(x)


def logaddexp(a, b):
    """log(exp(a) + exp(b)), without overflow: the larger side is taken out first."""
    a, b = _operands(a, b, float_op=True)
    xp = a.backend.xp
    top = xp.maximum(a.data, b.data)
    top = Tensor.wrap(xp.where(xp.isfinite(top), top, 0), a.device)  # a constant: it cancels in the maths
    return log(exp(a - top) + exp(b - top)) + top


def lerp(a, b, weight):
    """a + weight (b - a)."""
    return a + weight * (b - a)


def floor_divide(a, b):
    """floor(a / b) (Python's and PyTorch's //); gradient 0."""
    a, b = _operands(a, b)
    if a.dtype.kind in "iu":
        return Tensor.wrap(a.backend.xp.floor_divide(a.data, b.data), a.device)
    return floor(div(a, b))


def remainder(a, b):
    """a - floor(a / b) b: the sign of b, like Python's and PyTorch's %. (fmod takes a's sign.)"""
    a, b = _operands(a, b)
    if a.dtype.kind in "iu":
        return Tensor.wrap(a.backend.xp.remainder(a.data, b.data), a.device)
    return a - floor(div(a, b)) * b


def fmod(a, b):
    """a - trunc(a / b) b: the sign of a, like C's fmod and torch.fmod."""
    a, b = _operands(a, b)
    if a.dtype.kind in "iu":
        return Tensor.wrap(a.backend.xp.fmod(a.data, b.data), a.device)
    return a - trunc(div(a, b)) * b


def rounded_div(a, b, rounding_mode):
    """a / b rounded by "trunc" or "floor" (gradient 0); `F.div(a, b, rounding_mode=...)` comes here."""
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        a, b = _operands(a, b)
        if a.dtype.kind in "iu":
            return Tensor.wrap(a.backend.xp.trunc(a.data / b.data).astype(a.dtype), a.device)
        return trunc(div(a, b))
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
