"""Bitwise ops on integer and boolean tensors: and, or, xor, not, and the shifts (the Tensor
operators & | ^ ~ << >> come here). Not differentiated; a float operand is a DTypeError."""
from __future__ import annotations

from ..errors import DTypeError
from ..tensor import Tensor
from ._common import _broadcast_error, _pair
from .elementwise import invert

bitwise_not = invert  # `~`: bitwise not of an integer tensor, logical not of a boolean one


def _bitwise(op, how, a, b, kinds="iub"):
    x, y = _pair(a, b)
    if x.dtype.kind not in kinds:
        wanted = "integer or boolean" if "b" in kinds else "integer"
        got = " and ".join(f"{o.dtype} {o.shape}" if isinstance(o, Tensor) else type(o).__name__ for o in (a, b))
        raise DTypeError(f"{op}: needs {wanted} operands, got {got} (which make {x.dtype})")
    try:
        return Tensor.wrap(getattr(x.backend.xp, how)(x.data, y.data), x.device)
    except ValueError:
        raise _broadcast_error(op, x, y) from None


def bitwise_and(a, b): return _bitwise("bitwise_and (&)", "bitwise_and", a, b)
def bitwise_or(a, b): return _bitwise("bitwise_or (|)", "bitwise_or", a, b)
def bitwise_xor(a, b): return _bitwise("bitwise_xor (^)", "bitwise_xor", a, b)


def bitwise_left_shift(a, b):
    """a << b for integer tensors (bits shifted out are lost, as in PyTorch's fixed-width integers)."""
    return _bitwise("bitwise_left_shift (<<)", "left_shift", a, b, kinds="iu")


def bitwise_right_shift(a, b):
    """a >> b for integer tensors (arithmetic: a negative number stays negative)."""
    return _bitwise("bitwise_right_shift (>>)", "right_shift", a, b, kinds="iu")
