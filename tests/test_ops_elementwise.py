"""Elementwise ops, the checks beyond the op table (tests/test_op_table.py generates the
forward, gradient and second-order checks of every op): known values, saturation, the
subgradient at kinks, the tie rules of maximum/minimum, and where each gradient goes."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.functional.references import gelu_tanh as _gelu_tanh
from tinygrad_attn.testing import arrays, broadcastable_shapes, gradcheck, masks, shapes
from helpers import T, close, fixture_ok


def test_negative_base_with_an_integer_exponent(device):
    neg = -np.random.default_rng(0).uniform(0.3, 2.0, size=(2, 3))
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



def test_clip_gradient_at_bounds_is_one(device):
    # documented: gradient 1 inside [min, max] with the ends included
    x = T([-2.0, -1.0, 0.0, 1.0, 2.0], device)
    F.clip(x, -1.0, 1.0).sum().backward()
    close(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="clip"):
        F.clip(x)

