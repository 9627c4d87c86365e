"""Elementwise ops: forward against NumPy, gradient against finite differences (float64).

Binary ops are drawn over broadcasting shape pairs (0-d to 4-d, size-1 axes, missing
leading axes); kinked ops draw inputs kept away from their kinks so that central
differences never straddle one, and the tie rules are checked on explicit ties.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import arrays, broadcastable_shapes, gradcheck, masks, shapes
from helpers import T, close

# the device fixture is the same for every example, so function scope is safe here
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large, HealthCheck.filter_too_much])

_erf = np.vectorize(math.erf, otypes=[np.float64])


def off_grid(shape):
    """Values on a 0.25 grid shifted by 0.1: any two drawn this way and `on_grid` differ by >= 0.1."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-8, 8)).map(lambda a: a * 0.25 + 0.1)


def on_grid(shape):
    return hnp.arrays(np.int64, shape, elements=st.integers(-8, 8)).map(lambda a: a * 0.25)


# ---------------------------------------------------------------- binary ops

BINARY = {
    "add": (F.add, np.add, {}, {}),
    "sub": (F.sub, np.subtract, {}, {}),
    "mul": (F.mul, np.multiply, {}, {}),
    "div": (F.div, np.divide, {}, {"min_abs": 0.5}),
    "pow": (F.pow, np.power, {"low": 0.5, "high": 2.0}, {"low": -2.0, "high": 2.0}),
}


@pytest.mark.parametrize("name", list(BINARY))
@fixture_ok
@given(data=st.data(), pair=broadcastable_shapes())
def test_binary_forward_and_grad(device, name, data, pair):
    fn, ref, a_kw, b_kw = BINARY[name]
    a = data.draw(arrays(pair[0], **a_kw), label="a")
    b = data.draw(arrays(pair[1], **b_kw), label="b")
    ta, tb = T(a, device), T(b, device)
    close(fn(ta, tb), ref(a, b))
    gradcheck(fn, ta, tb)


@pytest.mark.parametrize("name", list(BINARY))
@fixture_ok
@given(data=st.data(), shape=shapes())
def test_binary_with_python_scalar_both_sides(device, name, data, shape):
    fn, ref, a_kw, b_kw = BINARY[name]
    a = data.draw(arrays(shape, **a_kw), label="a")
    s = 1.5  # positive and away from 0: a valid base, divisor and exponent
    ta = T(a, device)
    close(fn(ta, s), ref(a, s))
    gradcheck(lambda x: fn(x, s), ta)
    if name != "pow":  # scalar ** tensor is tested below with a positive base
        b = data.draw(arrays(shape, **b_kw), label="b")
        tb = T(b, device)
        close(fn(s, tb), ref(s, b))
        gradcheck(lambda y: fn(s, y), tb)


@fixture_ok
@given(data=st.data(), shape=shapes())
def test_pow_tensor_scalar_exponents(device, data, shape):
    p = data.draw(st.sampled_from([2, 3, -1, 0.5, -0.5, 1.7, 0]), label="p")
    a = data.draw(arrays(shape, low=0.3, high=2.0), label="a")
    ta = T(a, device)
    close(ta ** p, np.power(a, p))
    gradcheck(lambda x: x ** p, ta)
    # a negative base with an integer exponent is well defined
    neg = -a
    tn = T(neg, device)
    close(tn ** 3, neg ** 3)
    gradcheck(lambda x: x ** 3, tn)


@fixture_ok
@given(data=st.data(), shape=shapes())
def test_scalar_base_rpow(device, data, shape):
    b = data.draw(arrays(shape), label="b")
    tb = T(b, device)
    close(2.0 ** tb, np.power(2.0, b))
    gradcheck(lambda y: 2.0 ** y, tb)


def test_pow_gradient_formula_explicit(device):
    a, b = T([0.5, 2.0, 3.0], device), T([2.0, -1.0, 0.5], device)
    (a ** b).sum().backward()
    an, bn = np.array([0.5, 2.0, 3.0]), np.array([2.0, -1.0, 0.5])
    close(a.grad, bn * an ** (bn - 1))
    close(b.grad, an ** bn * np.log(an))


# ---------------------------------------------------------------- unary ops

def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


UNARY = {
    "neg": (F.neg, np.negative, {}),
    "exp": (F.exp, np.exp, {}),
    "log": (F.log, np.log, {"low": 0.1, "high": 3.0}),
    "sqrt": (F.sqrt, np.sqrt, {"low": 0.1, "high": 3.0}),
    "tanh": (F.tanh, np.tanh, {}),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), {"low": -6.0, "high": 6.0}),
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0), {"min_abs": 1e-2}),
    "gelu_tanh": (lambda x: F.gelu(x, "tanh"), _gelu_tanh, {"low": -4.0, "high": 4.0}),
    "gelu_exact": (lambda x: F.gelu(x, "none"), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), {"low": -4.0, "high": 4.0}),
    "abs": (F.abs, np.abs, {"min_abs": 1e-2}),
    "erf": (F.erf, _erf, {}),
}


@pytest.mark.parametrize("name", list(UNARY))
@fixture_ok
@given(data=st.data(), shape=shapes())
def test_unary_forward_and_grad(device, name, data, shape):
    fn, ref, kw = UNARY[name]
    a = data.draw(arrays(shape, **kw), label="a")
    ta = T(a, device)
    close(fn(ta), ref(a), rtol=1e-9)
    gradcheck(fn, ta)


def test_unary_known_values(device):
    x = T([-1.0, 0.0, 1.0, 2.0], device, grad=False)
    # Phi(1) = 0.8413447460685429 (tables), so gelu(1) = Phi(1), gelu(-1) = -(1 - Phi(1))
    close(F.gelu(x, "none"), [-0.15865525393145707, 0.0, 0.8413447460685429, 1.9544997361036416], rtol=1e-12)
    close(F.erf(x), [-0.8427007929497149, 0.0, 0.8427007929497149, 0.9953222650189527], rtol=1e-12)
    close(F.gelu(x, "tanh"), _gelu_tanh(np.array([-1.0, 0.0, 1.0, 2.0])))
    with pytest.raises(ValueError, match="gelu"):
        F.gelu(x, "quadratic")


def test_sigmoid_and_tanh_saturate_without_overflow(device):
    x = T([-1000.0, -50.0, 0.0, 50.0, 1000.0], device)
    with np.errstate(over="raise"):
        y = F.sigmoid(x)
    assert np.all(np.isfinite(y.numpy()))
    close(y, [0.0, 1 / (1 + math.exp(50)), 0.5, 1 / (1 + math.exp(-50)), 1.0], atol=1e-300)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    close(x.grad[2], 0.25)


def test_relu_and_abs_kink_subgradient_is_zero(device):
    x = T([-1.0, 0.0, 2.0], device)
    F.relu(x).sum().backward()
    close(x.grad, [0.0, 0.0, 1.0])
    y = T([-1.0, 0.0, 2.0], device)
    F.abs(y).sum().backward()
    close(y.grad, [-1.0, 0.0, 1.0])


# ---------------------------------------------------------------- maximum / minimum

@pytest.mark.parametrize("op", ["maximum", "minimum"])
@fixture_ok
@given(data=st.data(), pair=broadcastable_shapes())
def test_maximum_minimum_forward_and_grad(device, op, data, pair):
    a = data.draw(off_grid(pair[0]), label="a")  # never within 0.1 of b: no ties to straddle
    b = data.draw(on_grid(pair[1]), label="b")
    fn, ref = getattr(F, op), getattr(np, op)
    ta, tb = T(a, device), T(b, device)
    close(fn(ta, tb), ref(a, b))
    gradcheck(fn, ta, tb)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_gradient_evenly(device, op):
    # documented rule: at a tie each input receives half of the gradient
    a = T([1.0, 2.0, 3.0], device)
    b = T([1.0, 5.0, 0.0], device)
    g = np.array([2.0, 3.0, 4.0])
    getattr(F, op)(a, b).backward(tga.Tensor(g, device=device))
    if op == "maximum":
        close(a.grad, [1.0, 0.0, 4.0])
        close(b.grad, [1.0, 3.0, 0.0])
    else:
        close(a.grad, [1.0, 3.0, 0.0])
        close(b.grad, [1.0, 0.0, 4.0])


def test_maximum_tie_with_broadcast_scalar(device):
    # relu written as maximum(x, 0): the tie at 0 splits; the broadcast side sums its halves
    x = T([-1.0, 0.0, 0.0, 2.0], device)
    zero = T(0.0, device)
    F.maximum(x, zero).sum().backward()
    close(x.grad, [0.0, 0.5, 0.5, 1.0])
    close(zero.grad, 1.0 + 0.5 + 0.5)


# ---------------------------------------------------------------- where / masked_fill / clip

@fixture_ok
@given(data=st.data(), pair=broadcastable_shapes())
def test_where_forward_and_grad(device, data, pair):
    out_shape = np.broadcast_shapes(*pair)
    cond = data.draw(masks(out_shape), label="cond")
    a = data.draw(arrays(pair[0]), label="a")
    b = data.draw(arrays(pair[1]), label="b")
    ta, tb = T(a, device), T(b, device)
    close(F.where(cond, ta, tb), np.where(cond, a, b))
    gradcheck(lambda x, y: F.where(cond, x, y), ta, tb)
    # the gradient goes to the chosen side only, summed over broadcast axes
    F.where(cond, ta, tb).sum().backward()
    close(ta.grad, _sum_to(cond.astype(float), pair[0]))
    close(tb.grad, _sum_to((~cond).astype(float), pair[1]))


def shapes_that_broadcast_to(shape):
    """Shapes that broadcast to `shape` without growing it: some leading dims dropped, some set to 1."""
    @st.composite
    def build(draw):
        drop = draw(st.integers(0, len(shape)))
        return tuple(draw(st.sampled_from([n, 1])) for n in shape[drop:])
    return build()


def _sum_to(g, shape):
    """Independent unbroadcast: sum leading axes, then the axes that were size 1."""
    g = np.asarray(g, dtype=np.float64)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def test_where_with_python_scalar_side(device):
    x = T([1.0, -2.0, 3.0], device)
    y = F.where(np.array([True, False, True]), x, 0.0)
    close(y, [1.0, 0.0, 3.0])
    y.sum().backward()
    close(x.grad, [1.0, 0.0, 1.0])


@fixture_ok
@given(data=st.data(), shape=shapes())
def test_masked_fill_forward_and_grad(device, data, shape):
    mshape = data.draw(shapes_that_broadcast_to(shape), label="mask_shape")
    mask = data.draw(masks(mshape), label="mask")
    a = data.draw(arrays(shape), label="a")
    value = data.draw(st.sampled_from([0.0, -1e9, 3.5, -np.inf]), label="value")
    ta = T(a, device)
    out = F.masked_fill(ta, tga.Tensor(mask, device=device), value)
    close(out, np.where(mask, value, a))
    # a huge fill value would swamp the finite differences; the gradient does not depend on it
    gradcheck(lambda x: F.masked_fill(x, mask, value if abs(value) < 10 else 0.0), ta)
    ta2 = T(a, device)
    F.masked_fill(ta2, mask, value).backward(tga.Tensor(np.ones(shape), device=device))
    close(ta2.grad, np.broadcast_to(~mask, shape).astype(float))


@fixture_ok
@given(data=st.data(), shape=shapes())
def test_clip_forward_and_grad(device, data, shape):
    a = data.draw(off_grid(shape), label="a")  # bounds are on the grid, values 0.1 off it
    low, high = data.draw(st.sampled_from([(-0.5, 0.75), (None, 0.5), (-1.0, None), (0.0, 0.0)]), label="bounds")
    ta = T(a, device)
    ref = np.clip(a, -np.inf if low is None else low, np.inf if high is None else high)
    close(F.clip(ta, low, high), ref)
    gradcheck(lambda x: F.clip(x, low, high), ta)
    assert ta.clamp(low, high).shape == a.shape


def test_clip_gradient_at_bounds_is_one(device):
    # documented: gradient 1 inside [min, max] with the ends included
    x = T([-2.0, -1.0, 0.0, 1.0, 2.0], device)
    F.clip(x, -1.0, 1.0).sum().backward()
    close(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="clip"):
        F.clip(x)
