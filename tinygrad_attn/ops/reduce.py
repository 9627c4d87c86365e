"""Reductions over any axes. `axis` is already normalized to a tuple of non-negative ints."""
import numpy as np

from ..autograd import Function
from ..dtypes import accumulator
from .elementwise import MaskedFill, const


def _kept_shape(shape, axis):
    """The shape of the reduced result with keepdims=True."""
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _expand_back(g, in_shape, axis, keepdims):
    """Bring a reduced gradient back to the input's shape."""
    if not keepdims:
        g = g.reshape(_kept_shape(in_shape, axis))
    return g.expand(in_shape)


def array_sum(backend, a, axis: tuple, keepdims: bool):
    """The sum of array `a` over `axis` (a tuple), as the Sum op computes it."""
    if a.dtype.kind == "f" and a.dtype.itemsize >= 4:  # the backend's fastest sums down columns (bias gradients) and along rows
        if a.ndim == 2 and axis == (0,) and not keepdims:
            return backend.column_sum(a)
        if a.ndim and axis == (a.ndim - 1,) and keepdims:
            return backend.row_sum(a)
    wide = accumulator(a.dtype)  # float16 / bfloat16 accumulate in float32
    if wide is not None:
        return backend.xp.sum(a, axis=axis, keepdims=keepdims, dtype=wide).astype(a.dtype)
    return backend.xp.sum(a, axis=axis, keepdims=keepdims)


class Sum(Function):
    def forward(self, a, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        return array_sum(self.backend, a, axis, keepdims)

    def backward(self, g):
        return (_expand_back(g, self.inputs[0].shape, self.axis, self.keepdims),)


class Max(Function):
    """Max over axes. Tie rule: the gradient is shared evenly among all maximal elements."""

    def forward(self, a, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        return self.xp.max(a, axis=axis, keepdims=keepdims)

    def backward(self, g):
        a = self.inputs[0]
        xp = self.xp
        kept = _kept_shape(a.shape, self.axis)
        is_max = (a.data == xp.reshape(self.output.data, kept)).astype(g.dtype)
        share = is_max / xp.sum(is_max, axis=self.axis, keepdims=True)
        return (_expand_back(g, a.shape, self.axis, self.keepdims) * const(g, share),)


class Min(Max):
    """Min over axes (any dtype, bools included); ties share the gradient as for Max."""

    def forward(self, a, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        return self.xp.min(a, axis=axis, keepdims=keepdims)


class LogSumExp(Function):
    """log(sum(exp(a))) over axes, computed after subtracting the max so it stays finite."""

    def forward(self, a, axis, keepdims):
        xp = self.xp
        self.axis, self.keepdims = axis, keepdims
        m = xp.max(a, axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # rows of -inf give -inf, not NaN
        with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for a row of -inf
            total = xp.sum(xp.exp(a - m), axis=axis, keepdims=True, dtype=accumulator(a.dtype))
            out = (xp.log(total) + m).astype(a.dtype, copy=False)
        return out if keepdims else xp.reshape(out, tuple(n for i, n in enumerate(out.shape) if i not in axis))

    def backward(self, g):
        a = self.inputs[0]
        xp = self.xp
        # softmax shifted by the (constant) max, not by the output: the output is rounded at
        # the scale of |a|, which would cost float32 logits of 1e4 three digits of gradient
        m = xp.max(a.data, axis=self.axis, keepdims=True)
        e = (a - const(g, xp.where(xp.isfinite(m), m, 0))).exp()
        softmax = e / e.sum(axis=self.axis, keepdims=True)
        return (_expand_back(g, a.shape, self.axis, self.keepdims) * softmax,)


class Cumsum(Function):
    """Running sum along `axis` (from the end when `reverse`); its adjoint is the running sum the
    other way."""

    def forward(self, a, axis, reverse=False):
        self.axis, self.reverse = axis, reverse
        xp = self.xp
        if reverse:
            return xp.flip(xp.cumsum(xp.flip(a, axis), axis=axis), axis)
        return xp.cumsum(a, axis=axis)

    def backward(self, g):
        return (Cumsum.apply(g, axis=self.axis, reverse=not self.reverse),)


class Cumprod(Function):
    """Running product along `axis`. d out_j / d x_i = prod_{k <= j, k != i} x_k for j >= i:
    without zeros that is out_j / x_i, so the gradient is a reverse running sum of g * out
    divided by x; with a zero along the axis the products are taken as they are (an (n, n)
    table per row), so the gradient stays exact there too."""

    def forward(self, a, axis):
        self.axis = axis
        return self.xp.cumprod(a, axis=axis)

    def backward(self, g):
        x = self.inputs[0]
        if not bool((x.data == 0).any()):
            return (Cumsum.apply(g * self.output, axis=self.axis, reverse=True) / x,)
        return (_cumprod_grad_with_zeros(x, g, self.axis),)


def _cumprod_grad_with_zeros(x, g, axis):
    """sum_{j >= i} g_j prod_{k <= j, k != i} x_k along `axis`, products taken one by one."""
    xp = x.backend.xp
    xs, gs = x.swapaxes(axis, -1), g.swapaxes(axis, -1)
    n = xs.shape[-1]
    rows = MaskedFill.apply(xs.unsqueeze(-2).expand(xs.shape[:-1] + (n, n)), mask=xp.eye(n, dtype=bool), value=1)
    products = Cumprod.apply(rows, axis=rows.ndim - 1)  # [i, j] = prod_{k <= j, k != i} x_k
    later = const(g, xp.triu(xp.ones((n, n), dtype=g.dtype)))  # only j >= i depends on x_i
    return (gs.unsqueeze(-2) * products * later).sum(axis=-1).swapaxes(axis, -1)
