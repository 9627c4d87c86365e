"""Second derivatives (gradgradcheck: finite differences of create_graph gradients, float64)
for the elementwise ops, matmul, sum/mean, softmax, log_softmax, cross_entropy and the
composite layer_norm; the fused layer_norm must refuse instead of answering wrongly."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.errors import GraphError
from tinygrad_attn.testing import arrays, broadcastable_shapes, gradgradcheck, masks, matmul_shapes, shapes
from helpers import T

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large, HealthCheck.filter_too_much])
small = dict(max_dims=3, max_side=3)


BINARY = {
    "add": (F.add, {}, {}),
    "sub": (F.sub, {}, {}),
    "mul": (F.mul, {}, {}),
    "div": (F.div, {}, {"min_abs": 0.5}),
    "pow": (F.pow, {"low": 0.5, "high": 2.0}, {}),
    "maximum": (F.maximum, None, None),
}


@pytest.mark.parametrize("name", list(BINARY))
@fixture_ok
@given(data=st.data(), pair=broadcastable_shapes(max_dims=3, max_side=3))
def test_binary_second_order(device, name, data, pair):
    fn, a_kw, b_kw = BINARY[name]
    if a_kw is None:  # kinked: keep the two sides 0.1 apart
        grid = lambda s, off: hnp.arrays(np.int64, s, elements=st.integers(-6, 6)).map(lambda v: v * 0.25 + off)
        a, b = data.draw(grid(pair[0], 0.1)), data.draw(grid(pair[1], 0.0))
    else:
        a, b = data.draw(arrays(pair[0], **a_kw)), data.draw(arrays(pair[1], **b_kw))
    gradgradcheck(fn, T(a, device), T(b, device), atol=1e-4, rtol=1e-3)


UNARY = {
    "neg": (F.neg, {}),
    "exp": (F.exp, {}),
    "log": (F.log, {"low": 0.2, "high": 3.0}),
    "sqrt": (F.sqrt, {"low": 0.2, "high": 3.0}),
    "tanh": (F.tanh, {}),
    "sigmoid": (F.sigmoid, {}),
    "relu": (F.relu, {"min_abs": 1e-2}),
    "abs": (F.abs, {"min_abs": 1e-2}),
    "gelu_tanh": (lambda x: F.gelu(x, "tanh"), {}),
    "gelu_exact": (lambda x: F.gelu(x, "none"), {}),
    "erf": (F.erf, {}),
    "pow_scalar": (lambda x: x ** 3, {}),
    "pow_half": (lambda x: x ** 0.5, {"low": 0.2, "high": 3.0}),
    "square": (lambda x: x ** 2, {}),
    "clip": (lambda x: F.clip(x, -0.5, 0.75), {"min_abs": 1e-2}),
}


@pytest.mark.parametrize("name", list(UNARY))
@fixture_ok
@given(data=st.data(), shape=shapes(**small))
def test_unary_second_order(device, name, data, shape):
    fn, kw = UNARY[name]
    a = data.draw(arrays(shape, **kw))
    if name == "clip":  # keep away from the clip bounds too
        a = np.where(np.abs(a + 0.5) < 1e-2, a + 0.05, a)
        a = np.where(np.abs(a - 0.75) < 1e-2, a + 0.05, a)
    gradgradcheck(fn, T(a, device), atol=1e-4, rtol=1e-3)


@fixture_ok
@given(data=st.data(), pair=broadcastable_shapes(max_dims=3, max_side=3))
def test_where_and_masked_fill_second_order(device, data, pair):
    out = np.broadcast_shapes(*pair)
    cond = data.draw(masks(out))
    a, b = data.draw(arrays(pair[0])), data.draw(arrays(pair[1]))
    # multiply by the inputs so the second derivative is not trivially zero
    gradgradcheck(lambda x, y: F.where(cond, x * x, y * x.sum()), T(a, device), T(b, device), atol=1e-4, rtol=1e-3)
    mask = data.draw(masks(pair[0]))
    gradgradcheck(lambda x: F.masked_fill(x * x, mask, 0.0), T(a, device), atol=1e-4, rtol=1e-3)


@fixture_ok
@given(data=st.data(), pair=matmul_shapes(max_batch_dims=1, max_side=3))
def test_matmul_second_order(device, data, pair):
    a, b = data.draw(arrays(pair[0])), data.draw(arrays(pair[1]))
    gradgradcheck(F.matmul, T(a, device), T(b, device), atol=1e-4, rtol=1e-3)
    # a genuinely curved function of both operands
    gradgradcheck(lambda x, y: F.matmul(x, y).tanh(), T(a, device), T(b, device), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("reduce", ["sum", "mean", "var", "logsumexp", "max"])
@fixture_ok
@given(data=st.data(), shape=shapes(**small), keepdims=st.booleans())
def test_reduction_second_order(device, reduce, data, shape, keepdims):
    a = data.draw(arrays(shape, unique=reduce == "max"))
    axis = data.draw(st.one_of(st.none(), st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))) if shape else None
    if reduce == "var":
        n = a.size if axis is None else shape[axis]
        if n < 2:
            axis, a = None, np.concatenate([a.reshape(-1), [0.3]])
    fn = getattr(F, reduce)
    # through a curved map so that the second derivative of sum/mean/max is not identically
    # zero (exp for max: it keeps the values distinct, where squaring would make ties)
    inner = {"sum": lambda x: x * x, "mean": lambda x: x * x, "var": lambda x: x, "logsumexp": lambda x: x,
             "max": lambda x: x.exp()}[reduce]
    gradgradcheck(lambda x: fn(inner(x), axis, keepdims), T(a, device), atol=1e-4, rtol=1e-3)


SHAPE_OPS = {
    "getitem_repeats": lambda x: x[np.array([0, 2, 0, 0])],
    "getitem_bool": lambda x: x[np.array([True, False, True])],
    "getitem_slice": lambda x: x[1:, ::-2],
    "gather": lambda x: x.gather(1, np.array([[0, 0], [1, 0], [1, 1]])),
    "embedding": lambda x: F.embedding(np.array([[2, 2], [0, 1]]), x),
    "cat_stack": lambda x: F.stack([F.cat([x, x[:, :1]], 1), F.cat([x[:, 1:], x], 1)]),
    "split": lambda x: x.split([1, 1], axis=1)[1],
    "permute_reshape_expand": lambda x: x.T.reshape(1, 6).expand(3, 6),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_second_order(device, name):
    # squared after the move, so the gradient depends on x and must flow back through the adjoint
    x = np.random.default_rng(2).uniform(-2, 2, size=(3, 2))
    gradgradcheck(lambda t: SHAPE_OPS[name](t) ** 2, T(x, device), atol=1e-4, rtol=1e-3)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, **small), use_mask=st.booleans())
def test_softmax_second_order(device, data, shape, use_mask):
    a = data.draw(arrays(shape))
    mask = data.draw(masks(shape)) if use_mask else None
    gradgradcheck(lambda x: F.softmax(x, -1, mask=mask), T(a, device), atol=1e-4, rtol=1e-3)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, **small))
def test_log_softmax_second_order(device, data, shape):
    a = data.draw(arrays(shape))
    ax = data.draw(st.integers(-len(shape), len(shape) - 1))
    gradgradcheck(lambda x: F.log_softmax(x, ax), T(a, device), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@fixture_ok
@given(data=st.data(), lead=shapes(max_dims=2, max_side=3), classes=st.integers(1, 4),
       smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_second_order(device, reduction, data, lead, classes, smoothing):
    logits = data.draw(arrays(lead + (classes,)))
    targets = data.draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(list(range(classes)) + [-100])))
    gradgradcheck(lambda x: F.cross_entropy(x, targets, label_smoothing=smoothing, reduction=reduction),
                  T(logits, device), atol=1e-4, rtol=1e-3)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=2, max_side=4))
def test_layer_norm_second_order(device, data, shape):
    d = shape[-1]
    x = data.draw(arrays(shape))
    w, b = data.draw(arrays((d,), low=0.5, high=2.0)), data.draw(arrays((d,)))
    gradgradcheck(lambda a, ww, bb: F.layer_norm(a, ww, bb, 1e-3),
                  T(x, device), T(w, device), T(b, device), atol=1e-3, rtol=1e-2)


def test_hessian_vector_product_of_quadratic_form(device):
    # f = x^T A x has Hessian A + A^T: an exact, independent check of double backward
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    x = T(rng.standard_normal(4), device)
    At = tga.Tensor(A, device=device)
    f = (x * (At @ x)).sum()
    (g,) = tga.grad(f, x, create_graph=True)
    (hv,) = tga.grad((g * tga.Tensor(v, device=device)).sum(), x)
    np.testing.assert_allclose(hv.numpy(), (A + A.T) @ v, rtol=1e-10)
