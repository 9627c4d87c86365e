"""More unary primitives: trigonometry and its inverses, softplus, and the piecewise-constant
rounding functions (zero gradient). Each backward is written with Tensor ops."""
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
