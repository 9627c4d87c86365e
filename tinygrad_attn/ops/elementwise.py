"""Elementwise ops. Broadcasting is undone by the graph walk, not here."""
import math

from ..autograd import Function
from ..backend.array_kernels import GELU_K0, GELU_K1


def const(like, array):
    """A constant (no-grad) Tensor on the device of `like`."""
    from ..tensor import Tensor
    return Tensor.wrap(array, like.device, False)


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.inputs
        return (g * b if a.requires_grad else None), (g * a if b.requires_grad else None)


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.inputs
        ga = g / b
        return ga, (-ga * a / b if b.requires_grad else None)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    """a ** b with both a tensor; d/da = b a^(b-1), d/db = a^b log a.

    At a base of 0 the limits are taken, as in PyTorch: d/da is 0 where b = 0 (a^b is 1
    there), and d/db is 0 where b >= 0 (a^b log a -> 0); for b < 0 it is -inf. The
    offending base is replaced by 1 before the power or log, so that no 0 * inf makes a
    NaN, in this gradient or in the next one.
    """

    def forward(self, a, b):
        return a ** b

    def backward(self, g):
        a, b = self.inputs
        at_zero = a.data == 0
        ga = gb = None
        if a.requires_grad:
            ga = g * b * _one_where(a, at_zero & (b.data == 0)) ** (b - 1)
        if b.requires_grad:
            gb = g * self.output * _one_where(a, at_zero & (b.data >= 0)).log()
        return ga, gb


def _one_where(a, mask):
    """a with 1 where mask is True (no gradient there); a itself when mask is all False."""
    return MaskedFill.apply(a, mask=mask, value=1) if mask.any() else a


class PowScalar(Function):
    """a ** p for a Python number p (the common case: squares, square roots, reciprocals)."""

    def forward(self, a, exponent):
        self.exponent = exponent
        return a ** exponent

    def backward(self, g):
        (a,) = self.inputs
        p = self.exponent
        if p == 0:  # a^0 = 1 everywhere, even at 0 (where p a^(p-1) would be 0 * inf)
            return (g * 0,)
        return (g * p * a ** (p - 1) if p != 2 else g * 2 * a,)


class Exp(Function):
    def forward(self, a):
        return self.xp.exp(a)

    def backward(self, g):
        return (g * self.output,)


class Log(Function):
    def forward(self, a):
        return self.xp.log(a)

    def backward(self, g):
        return (g / self.inputs[0],)


class Sqrt(Function):
    def forward(self, a):
        return self.xp.sqrt(a)

    def backward(self, g):
        return (g / (self.output * 2),)


class Tanh(Function):
    def forward(self, a):
        return self.xp.tanh(a)

    def backward(self, g):
        y = self.output
        return (g * (1 - y * y),)


class Sigmoid(Function):
    def forward(self, a):
        xp = self.xp
        # split by sign so exp never overflows
        e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)

    def backward(self, g):
        y = self.output
        return (g * y * (1 - y),)


class Relu(Function):
    def forward(self, a):
        return self.xp.maximum(a, 0)

    def backward(self, g):
        a = self.inputs[0]
        return (g * const(g, (a.data > 0).astype(g.dtype)),)


class Abs(Function):
    def forward(self, a):
        return self.xp.abs(a)

    def backward(self, g):
        a = self.inputs[0]
        return (g * const(g, self.xp.sign(a.data).astype(g.dtype)),)


class GeluTanh(Function):
    """GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).

    Forward and fast backward are the backend's `gelu_tanh` kernels (which keep
    s = 0.5 (1 + tanh u) for backward, so it needs no second tanh).
    """

    def forward(self, a):
        y, self.saved = self.backend.gelu_tanh(a)
        return y

    def backward(self, g):
        x = self.inputs[0]
        t = (GELU_K0 * (x + GELU_K1 * x * x * x)).tanh()
        du = GELU_K0 * (1 + 3 * GELU_K1 * x * x)
        return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du),)

    def fast_backward(self, g):
        return (self.backend.gelu_tanh_backward(self.inputs[0].data, self.saved, g),)


class GeluExact(Function):
    """GELU, exact: x Phi(x), with Phi the standard normal CDF."""

    def forward(self, a):
        return 0.5 * a * (1 + self.backend.erf(a / math.sqrt(2.0)))

    def backward(self, g):
        x = self.inputs[0]
        cdf = _normal_cdf(x)
        pdf = (x * x * -0.5).exp() * (1 / math.sqrt(2 * math.pi))
        return (g * (cdf + x * pdf),)


class Erf(Function):
    def forward(self, a):
        return self.backend.erf(a)

    def backward(self, g):
        x = self.inputs[0]
        return (g * (x * x * -1).exp() * (2 / math.sqrt(math.pi)),)


def _normal_cdf(x):
    return (Erf.apply(x * (1 / math.sqrt(2.0))) + 1) * 0.5


def _split_at_ties(g, a_wins, ties):
    """Gradients of an elementwise max/min: all of g to the winner, half to each side at ties."""
    share_a = a_wins.astype(g.dtype) + 0.5 * ties.astype(g.dtype)
    share_a = g.backend.xp.broadcast_to(share_a, g.shape)
    return g * const(g, share_a), g * const(g, 1 - share_a)


class Maximum(Function):
    """Elementwise max; at ties each input gets half the gradient (the mean of the two subgradients)."""

    def forward(self, a, b):
        return self.xp.maximum(a, b)

    def backward(self, g):
        a, b = (t.data for t in self.inputs)
        return _split_at_ties(g, a > b, a == b)


class Minimum(Function):
    """Elementwise min; ties split the gradient evenly, as for Maximum."""

    def forward(self, a, b):
        return self.xp.minimum(a, b)

    def backward(self, g):
        a, b = (t.data for t in self.inputs)
        return _split_at_ties(g, a < b, a == b)


class Where(Function):
    """where(cond, a, b) with a constant boolean cond: the gradient goes to the chosen side."""

    def forward(self, a, b, cond):
        self.cond = cond
        return self.xp.where(cond, a, b)

    def backward(self, g):
        keep = self.xp.broadcast_to(self.cond, g.shape).astype(g.dtype)
        return g * const(g, keep), g * const(g, 1 - keep)


class MaskedFill(Function):
    """x with `value` wherever mask is True; those positions receive no gradient."""

    def forward(self, a, mask, value):
        self.mask = mask
        return self.xp.where(mask, self.xp.asarray(value, dtype=a.dtype), a)

    def backward(self, g):
        keep = self.xp.broadcast_to(~self.mask, g.shape).astype(g.dtype)
        return (g * const(g, keep),)


class Clip(Function):
    """clip(x, low, high): gradient 1 inside [low, high] (ends included), 0 outside."""

    def forward(self, a, low, high):
        self.low, self.high = low, high
        return self.xp.clip(a, low, high)

    def backward(self, g):
        a = self.inputs[0].data
        inside = a == a  # all True, then narrowed by whichever bounds exist
        if self.low is not None:
            inside = inside & (a >= self.low)
        if self.high is not None:
            inside = inside & (a <= self.high)
        return (g * const(g, inside.astype(g.dtype)),)
