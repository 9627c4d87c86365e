"""More unary primitives: trigonometry and its inverses, the inverse hyperbolic functions,
softplus, copysign, and the piecewise-constant rounding functions (zero gradient). Each
backward is written with Tensor ops."""
from ..autograd import Function
from .elementwise import const


class Sin(Function):
    def forward(self, a):
        return self.xp.sin(a)

    def backward(self, g):
        return (g * Cos.apply(self.inputs[0]),)


class Cos(Function):
    def forward(self, a):
        return self.xp.cos(a)

    def backward(self, g):
        return (-g * Sin.apply(self.inputs[0]),)


class Tan(Function):
    def forward(self, a):
        return self.xp.tan(a)

    def backward(self, g):
        y = self.output  # d tan = 1 + tan^2
        return (g * (1 + y * y),)


class Asin(Function):
    def forward(self, a):
        return self.xp.arcsin(a)

    def backward(self, g):
        x = self.inputs[0]
        return (g / (1 - x * x).sqrt(),)


class Acos(Function):
    def forward(self, a):
        return self.xp.arccos(a)

    def backward(self, g):
        x = self.inputs[0]
        return (-g / (1 - x * x).sqrt(),)


class Atan(Function):
    def forward(self, a):
        return self.xp.arctan(a)

    def backward(self, g):
        x = self.inputs[0]
        return (g / (1 + x * x),)


class Asinh(Function):
    def forward(self, a):
        return self.xp.arcsinh(a)

    def backward(self, g):
        x = self.inputs[0]
        return (g / (x * x + 1).sqrt(),)


class Acosh(Function):
    """Defined for x >= 1; d/dx = 1 / sqrt(x^2 - 1), infinite at 1 (as in PyTorch)."""

    def forward(self, a):
        return self.xp.arccosh(a)

    def backward(self, g):
        x = self.inputs[0]
        return (g / (x * x - 1).sqrt(),)


class Atanh(Function):
    """Defined on (-1, 1); d/dx = 1 / (1 - x^2)."""

    def forward(self, a):
        return self.xp.arctanh(a)

    def backward(self, g):
        x = self.inputs[0]
        return (g / (1 - x * x),)


class Copysign(Function):
    """|a| with the sign of b (the sign bit: -0.0 counts as negative). d/da = +-1, the sign
    that a changed by, and 0 at a = 0 (PyTorch's convention); d/db = 0 (flat but at b's jumps)."""

    def forward(self, a, b):
        return self.xp.copysign(a, b)

    def backward(self, g):
        xp = self.xp
        a, b = (t.data for t in self.inputs)
        flip = xp.where(a == 0, 0, xp.where(xp.signbit(a) == xp.signbit(b), 1, -1)).astype(g.dtype)
        return g * const(g, flip), (g * const(g, xp.zeros((), dtype=g.dtype)) if self.inputs[1].requires_grad else None)


class Softplus(Function):
    """log(1 + exp(x)), computed as logaddexp(0, x): finite for any x; d/dx = sigmoid(x)."""

    def forward(self, a):
        return self.xp.logaddexp(self.xp.zeros((), dtype=a.dtype), a)

    def backward(self, g):
        return (g * self.inputs[0].sigmoid(),)


class PiecewiseConstant(Function):
    """floor, ceil, round (half to even), trunc, sign: flat between jumps, so the gradient is
    0 (PyTorch's convention at the jumps too)."""

    def forward(self, a, how):
        return getattr(self.xp, how)(a)

    def backward(self, g):
        return (g * const(g, self.xp.zeros((), dtype=g.dtype)),)
