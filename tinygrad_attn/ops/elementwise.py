"""Elementwise ops. Broadcasting is undone by the graph walk, not here."""
import math

from ..autograd import Function, is_grad_enabled


def const(like, array):
    """A constant (no-grad) Tensor on the device of `like`."""
    from ..tensor import Tensor
    return Tensor._make(array, like.device, False)


def fused_kernels(fn, *arrays):
    """The backend's fused kernels (backend.fused) if it has them for these arrays, else None:
    then the op's own array expressions, the reference path, run instead."""
    fused = fn.backend.fused
    return fused if fused is not None and fused.supports(*arrays) else None


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
    """a ** b with both a tensor; d/da = b a^(b-1), d/db = a^b log a."""

    def forward(self, a, b):
        return a ** b

    def backward(self, g):
        a, b = self.inputs
        ga = g * b * a ** (b - 1) if a.requires_grad else None
        gb = g * self.output * a.log() if b.requires_grad else None
        return ga, gb


class PowScalar(Function):
    """a ** p for a Python number p (the common case: squares, square roots, reciprocals)."""

    def forward(self, a, exponent):
        self.exponent = exponent
        return a ** exponent

    def backward(self, g):
        (a,) = self.inputs
        p = self.exponent
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


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class GeluTanh(Function):
    """GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Written as x * s with s = 0.5 (1 + tanh(u)) = sigmoid(2u), u = sqrt(2/pi) (x + c x^3):
    forward keeps s, and backward needs no second tanh, d/dx = s + x s (1 - s) 2u'.
    """

    def forward(self, a):
        xp = self.xp
        fused = fused_kernels(self, a)
        if fused is not None:
            return fused.gelu(a)
        if a.ndim == 0:  # NumPy gives scalars, not arrays, for 0-d arithmetic: no in-place ops
            return self.forward(a.reshape(1)).reshape(())
        self.saved = _gelu_tanh_sigmoid(xp, a)
        return a * self.saved

    def backward(self, g):
        x = self.inputs[0]
        fused = fused_kernels(self, x.data, g.data)
        if fused is not None and not is_grad_enabled():
            return (const(g, fused.gelu_backward(x.data, g.data)),)
        if not is_grad_enabled():
            s = self.saved if self.saved is not None else _gelu_tanh_sigmoid(self.xp, x.data)  # forward was fused
            return (const(g, _gelu_tanh_grad(self.xp, x.data, s, g.data)),)
        # composite form, so that the gradient itself can be differentiated
        t = (_SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)).tanh()
        dt = _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * x * x)
        return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dt),)


def _gelu_tanh_sigmoid(xp, a):
    """s = 0.5 (1 + tanh(k0 (a + c a^3))) in place in one temporary: this runs on the widest
    activation of every block."""
    if a.ndim == 0:  # 0-d arithmetic gives NumPy scalars, which cannot be updated in place
        return _gelu_tanh_sigmoid(xp, a.reshape(1)).reshape(())
    s = a * a
    s *= _SQRT_2_OVER_PI * _GELU_C
    s += _SQRT_2_OVER_PI
    s *= a
    xp.tanh(s, out=s)
    s *= 0.5
    s += 0.5
    return s


def _gelu_tanh_grad(xp, x, s, g):
    """g * d gelu_tanh / dx on arrays, in place (two temporaries, one pass each step):
    d/dx = s + x s (1 - s) 2u', with s the forward's sigmoid(2u) and 2u' = 2 k0 (1 + 3 c x^2)."""
    if x.ndim == 0:  # 0-d arithmetic gives NumPy scalars, which cannot be updated in place
        return _gelu_tanh_grad(xp, x.reshape(1), s.reshape(1), g.reshape(1)).reshape(())
    slope = x * x
    slope *= 6 * _SQRT_2_OVER_PI * _GELU_C
    slope += 2 * _SQRT_2_OVER_PI
    slope *= x  # x 2u'
    d = xp.subtract(1, s, dtype=s.dtype)
    d *= s
    d *= slope
    d += s
    d *= g
    return d


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
    share_a = g._backend().xp.broadcast_to(share_a, g.shape)
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
