"""Reductions (sum, mean, max, min, var, logsumexp) over any axes, with and without keepdims.

Forward against NumPy, gradient against finite differences in float64; max/min draw
distinct values so no difference step crosses a tie, and the tie rule is tested on its own.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.errors import ShapeError
from tinygrad_attn.testing import arrays, gradcheck, shapes
from helpers import T, close, fixture_ok


@st.composite
def axes_for(draw, ndim):
    """None, one axis (maybe negative), or a tuple of distinct axes (maybe negative)."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


def _np_axes(axis):
    return axis if axis is None or isinstance(axis, int) else tuple(axis)


def _np_lse(a, axis, keepdims):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else tuple(range(a.ndim)))


REDUCTIONS = {
    "sum": (F.sum, np.sum, {}),
    "mean": (F.mean, np.mean, {}),
    "max": (F.max, np.max, {"unique": True}),
    "min": (F.min, np.min, {"unique": True}),
    "logsumexp": (F.logsumexp, _np_lse, {}),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@fixture_ok
@given(data=st.data(), shape=shapes(), keepdims=st.booleans())
def test_reduction_forward_and_grad(device, name, data, shape, keepdims):
    fn, ref, kw = REDUCTIONS[name]
    axis = data.draw(axes_for(len(shape)), label="axis")
    a = data.draw(arrays(shape, **kw), label="a")
    ta = T(a, device)
    close(fn(ta, axis, keepdims), ref(a, axis=_np_axes(axis), keepdims=keepdims))
    gradcheck(lambda x: fn(x, axis, keepdims), ta)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_methods_and_dim_keyword(device, name):
    a = np.arange(24.0).reshape(2, 3, 4) * 0.1
    ta = T(a, device)
    fn, ref, _ = REDUCTIONS[name]
    close(getattr(ta, name)(dim=1, keepdims=True), ref(a, axis=1, keepdims=True))
    close(getattr(ta, name)(axis=(0, -1)), ref(a, axis=(0, 2), keepdims=False))
    close(getattr(ta, name)(), ref(a, axis=None, keepdims=False))


@pytest.mark.parametrize("ddof", [0, 1])
@fixture_ok
@given(data=st.data(), shape=shapes(), keepdims=st.booleans())
def test_var_forward_and_grad(device, ddof, data, shape, keepdims):
    axis = data.draw(axes_for(len(shape)), label="axis")
    a = data.draw(arrays(shape), label="a")
    ta = T(a, device)
    axes = tuple(range(a.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    count = int(np.prod([a.shape[i] for i in axes])) if axes else 1
    if count - ddof <= 0:
        with pytest.raises(ShapeError, match="var"):
            F.var(ta, axis, keepdims, ddof)
        return
    close(F.var(ta, axis, keepdims, ddof), np.var(a, axis=_np_axes(axis), keepdims=keepdims, ddof=ddof), atol=1e-11)
    gradcheck(lambda x: x.var(axis, keepdims, ddof), ta)


# ---------------------------------------------------------------- tie rules

def test_max_ties_share_gradient_evenly(device):
    # documented: the gradient is shared evenly among all maximal elements
    x = T([1.0, 3.0, 3.0, 2.0], device)
    x.max().backward()
    close(x.grad, [0.0, 0.5, 0.5, 0.0])

    y = T([[5.0, 5.0, 5.0], [1.0, 4.0, 2.0]], device)
    y.max(axis=1).backward(tga.Tensor(np.array([3.0, 2.0]), device=device))
    close(y.grad, [[1.0, 1.0, 1.0], [0.0, 2.0, 0.0]])

    z = T([[2.0, 0.0], [2.0, 1.0]], device)
    z.max(axis=(0, 1), keepdims=True).sum().backward()
    close(z.grad, [[0.5, 0.0], [0.5, 0.0]])


def test_min_ties_share_gradient_evenly(device):
    x = T([[0.0, -1.0, -1.0, -1.0], [4.0, 2.0, 3.0, 2.0]], device)
    x.min(axis=-1).sum().backward()
    close(x.grad, [[0.0, 1 / 3, 1 / 3, 1 / 3], [0.0, 0.5, 0.0, 0.5]])


# ---------------------------------------------------------------- edge cases

def test_sum_over_empty_axis_gives_zeros(device):
    x = T(np.zeros((3, 0, 2)), device)
    s = x.sum(axis=1)
    close(s, np.zeros((3, 2)))
    s.sum().backward()
    assert x.grad.shape == (3, 0, 2)
    kept = T(np.zeros((0, 4)), device).sum(axis=0, keepdims=True)
    close(kept, np.zeros((1, 4)))
    close(T(np.zeros((0,)), device).sum(), 0.0)


def test_empty_mean_and_max_raise_shape_error(device):
    x = T(np.zeros((3, 0)), device)
    with pytest.raises(ShapeError, match=r"mean.*\(3, 0\)"):
        x.mean(axis=1)
    with pytest.raises(ShapeError, match=r"max.*\(3, 0\)"):
        x.max(axis=1)


@pytest.mark.parametrize("name", list(REDUCTIONS) + ["var"])
def test_reductions_of_0d_tensor(device, name):
    x = T(1.25, device)
    fn = getattr(F, name)
    y = fn(x)
    assert y.shape == ()
    close(y, 0.0 if name == "var" else 1.25)
    y.backward()
    close(x.grad, 0.0 if name == "var" else 1.0)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3))
def test_logsumexp_extreme_values_stay_finite(device, data, shape):
    a = data.draw(arrays(shape, low=-1e4, high=1e4), label="a")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    ta = T(a, device)
    out = ta.logsumexp(axis)
    assert np.all(np.isfinite(out.numpy()))
    close(out, _np_lse(a, axis, False), rtol=1e-12)
    out.sum().backward()
    m = a.max(axis=axis, keepdims=True)
    e = np.exp(a - m)
    close(ta.grad, e / e.sum(axis=axis, keepdims=True), atol=1e-12)


def test_logsumexp_of_all_minus_inf_row_is_minus_inf_not_nan(device):
    x = T([[-np.inf, -np.inf], [0.0, 0.0]], device, grad=False)
    close(x.logsumexp(-1), [-np.inf, np.log(2.0)])
