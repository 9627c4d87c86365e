"""Activations beyond relu/gelu/tanh/sigmoid, composed from primitives (softplus is one):
silu, softplus, leaky_relu, elu, selu, celu, mish, hardtanh, relu6, hardsigmoid, hardswish,
logsigmoid, softsign, quick_gelu. Where a piece is chosen by the sign of x, x = 0 takes the
x <= 0 piece; clip's rule (gradient 1 at the bounds) holds for the hard* functions."""
from __future__ import annotations

from ..ops import unary as U
from ._common import _floating
from .elementwise import abs, clip, exp, sigmoid, tanh, where

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def silu(x):
    """x sigmoid(x), also called swish."""
    return x * sigmoid(x)


swish = silu


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, finite for any x (above `threshold` PyTorch returns x; here
    the same value comes out of the stable formula)."""
    x = _floating(x)
    return U.Softplus.apply(x * beta) * (1.0 / beta) if beta != 1.0 else U.Softplus.apply(x)


def leaky_relu(x, negative_slope=0.01):
    return where(x.data > 0, x, x * negative_slope)


def elu(x, alpha=1.0):
    """x for x > 0, alpha (exp(x) - 1) otherwise (exp of min(x, 0), so no overflow in the unused side)."""
    return where(x.data > 0, x, (exp(clip(x, max=0.0)) - 1) * alpha)


def selu(x):
    return elu(x, SELU_ALPHA) * SELU_SCALE


def celu(x, alpha=1.0):
    return where(x.data > 0, x, (exp(clip(x, max=0.0) * (1.0 / alpha)) - 1) * alpha)


def mish(x):
    return x * tanh(softplus(x))


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return clip(x, min_val, max_val)


def relu6(x):
    return clip(x, 0.0, 6.0)


def hardsigmoid(x):
    return clip(x * (1 / 6) + 0.5, 0.0, 1.0)


def hardswish(x):
    return x * hardsigmoid(x)


def logsigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), finite for any x."""
    return -softplus(-_floating(x))


def softsign(x):
    return x / (abs(x) + 1)


def quick_gelu(x):
    """x sigmoid(1.702 x) (CLIP's GELU approximation)."""
    return x * sigmoid(x * 1.702)
