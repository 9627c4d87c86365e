"""Every op's fast backward (the backend kernel the engine runs when no graph of the gradient
is recorded) against the same op's Tensor-level backward (the mathematical truth, which
`create_graph=True` runs), on random shapes, axes, masks and indices, on every device.

Finite differences check the Tensor-level backward elsewhere (test_ops_*.py); here the
two implementations of each derivative are held against each other, so neither can drift.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.autograd import Function
from tinygrad_attn.ops import attention, linalg, nn as ops_nn, elementwise, shape as ops_shape
from tinygrad_attn.testing import arrays, masks, shapes
from helpers import T, fixture_ok


def _both_ways(fn, *inputs, seed=0):
    """(fast, Tensor-level) gradients of sum(fn(*inputs) * cotangent) with respect to inputs."""
    out = fn(*inputs)
    cot = tga.Tensor(np.random.default_rng(seed).standard_normal(out.shape), device=out.device)
    fast = tga.grad(out, inputs, grad_outputs=cot, retain_graph=True)
    truth = tga.grad(out, inputs, grad_outputs=cot, create_graph=True)
    return [g.numpy() for g in fast], [g.numpy() for g in truth]


def _agree(fn, *inputs, rtol=1e-9, atol=1e-11):
    fast, truth = _both_ways(fn, *inputs)
    for a, b in zip(fast, truth):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, float(np.abs(b).max(initial=0))))


# The ops with a fast backward, and the test that covers each: a new one must join the list.
COVERED = {ops_nn.Softmax, ops_nn.LogSoftmax, ops_nn.CrossEntropy, ops_nn.LayerNorm,
           elementwise.GeluTanh, attention.Attention, ops_shape.GetItem, linalg.Linear, linalg.MatMul,
           ops_shape.Reshape, ops_shape.Permute}


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@fixture_ok
@given(data=st.data(), lead=shapes(min_dims=0, max_dims=3, max_side=4), n_in=st.integers(1, 5),
       n_out=st.integers(1, 5), bias=st.booleans(), x_grad=st.booleans())
def test_linear(device, data, lead, n_in, n_out, bias, x_grad):
    x = T(data.draw(arrays(lead + (n_in,)), label="x"), device, grad=x_grad)
    w = T(data.draw(arrays((n_out, n_in)), label="weight"), device)
    inputs = [x, w] + ([T(data.draw(arrays((n_out,)), label="bias"), device)] if bias else [])
    wanted = [t for t in inputs if t.requires_grad]
    _agree(lambda *_: F.linear(*inputs), *wanted)


def test_every_fast_backward_is_covered_here():
    with_fast = {c for c in _subclasses(Function) if c.fast_backward is not None and c.__module__.startswith("tinygrad_attn")}
    assert with_fast == COVERED


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=4, max_side=5), masked=st.booleans())
def test_softmax(device, data, shape, masked):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    mask = None
    if masked:  # a mask broadcasting from trailing axes, with fully masked rows now and then
        tail = data.draw(st.integers(1, len(shape)), label="mask dims")
        mask = data.draw(masks(shape[-tail:]), label="mask")
    x = T(data.draw(arrays(shape, low=-4, high=4), label="x"), device)
    _agree(lambda t: F.softmax(t, axis, mask=mask), x)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3, max_side=5))
def test_log_softmax(device, data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = T(data.draw(arrays(shape, low=-4, high=4), label="x"), device)
    _agree(lambda t: F.log_softmax(t, axis), x)


@fixture_ok
@given(data=st.data(), lead=shapes(min_dims=1, max_dims=2, max_side=4), classes=st.integers(1, 6),
       reduction=st.sampled_from(["mean", "sum", "none"]), smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy(device, data, lead, classes, reduction, smoothing):
    from hypothesis.extra import numpy as hnp
    targets = data.draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(list(range(classes)) + [-100])))
    x = T(data.draw(arrays(lead + (classes,), low=-4, high=4), label="logits"), device)
    _agree(lambda t: F.cross_entropy(t, targets, label_smoothing=smoothing, reduction=reduction), x)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3, max_side=5))
def test_layer_norm(device, data, shape):
    d = shape[-1]
    x = T(data.draw(arrays(shape), label="x") + np.linspace(-1, 1, d), device)  # rows never constant
    w, b = (T(data.draw(arrays((d,)), label=n), device) for n in ("w", "b"))
    _agree(lambda a, ww, bb: F.layer_norm(a, ww, bb), x, w, b, rtol=1e-7, atol=1e-9)


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=0, max_dims=3, max_side=5))
def test_gelu_tanh(device, data, shape):
    x = T(data.draw(arrays(shape, low=-5, high=5), label="x"), device)
    _agree(lambda t: F.gelu(t, "tanh"), x)


@fixture_ok
@given(data=st.data(), batch=st.sampled_from([(), (2,), (2, 3), (1, 2)]), tq=st.integers(1, 4), tk=st.integers(1, 4),
       d=st.integers(1, 3), kind=st.sampled_from(["none", "bool", "causal", "float", "dropout", "learned"]),
       shared_kv=st.booleans())
def test_attention(device, data, batch, tq, tk, d, kind, shared_kv):
    kv_batch = batch[1:] if shared_kv else batch  # keys shared across the first axis broadcast
    q = T(data.draw(arrays(batch + (tq, d)), label="q"), device)
    k = T(data.draw(arrays(kv_batch + (tk, d)), label="k"), device)
    v = T(data.draw(arrays(kv_batch + (tk, d + 1)), label="v"), device)
    mask = None
    if kind == "bool":
        mask = data.draw(masks((tq, tk)), label="mask")
    elif kind == "float":
        mask = np.where(data.draw(masks((tq, tk)), label="allowed"), data.draw(arrays((tq, tk), low=-2, high=0)), -np.inf)
    dropout = 0.4 if kind == "dropout" else 0.0
    learned = []
    if kind == "learned":  # a bias that requires grad, broadcast over the batch, under a causal mask
        learned = [T(data.draw(arrays((tq, tk))), device)]
    _agree(lambda a, b, c, *bias: F.scaled_dot_product_attention(a, b, c, attn_mask=bias[0] if bias else mask,
                                                                 is_causal=kind in ("causal", "learned"),
                                                                 dropout_p=dropout), q, k, v, *learned)


# (a's shape, b's shape): plain, a batch against a matrix (one GEMM), a matrix against a
# batch, batch axes that broadcast both ways
MATMUL_SHAPES = [((3, 4), (4, 2)), ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
                 ((1, 3, 4), (2, 4, 1))]


@fixture_ok
@given(data=st.data(), pair=st.sampled_from(MATMUL_SHAPES), grads=st.sampled_from(["a", "b", "both"]))
def test_matmul(device, data, pair, grads):
    a = T(data.draw(arrays(pair[0]), label="a"), device, grad=grads != "b")
    b = T(data.draw(arrays(pair[1]), label="b"), device, grad=grads != "a")
    _agree(lambda *_: a @ b, *[t for t in (a, b) if t.requires_grad])


@fixture_ok
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=4, max_side=4))
def test_reshape_and_permute(device, data, shape):
    x = T(data.draw(arrays(shape), label="x"), device)
    axes = data.draw(st.permutations(range(len(shape))), label="axes")
    # a permuted (strided) view reshaped: the gradient goes back through both
    _agree(lambda t: (t.permute(*axes) * 2).reshape(-1).reshape(tuple(reversed(shape))), x)


INDICES = [np.s_[1:3], np.s_[:, 0], np.s_[..., ::2], np.s_[None, 1], np.s_[[0, 2, 0]], np.s_[:, [1, 1, 0]],
           np.s_[np.array([[0], [3]]), np.array([1, 2])]]


@pytest.mark.parametrize("index", INDICES, ids=range(len(INDICES)))
def test_getitem(device, index):
    x = T(np.random.default_rng(1).standard_normal((4, 3, 2)), device)
    _agree(lambda t: t[index], x)


def test_pieces_of_one_tensor_sum_into_one_gradient(device):
    """split + reuse: slice gradients written into one buffer, accumulated in place."""
    x = T(np.random.default_rng(2).standard_normal((3, 6)), device)

    def fn(t):
        a, b, c = F.split(t, 2, axis=-1)
        return F.cat([a * b, c * 2 + a, t[:, 1:3].exp()], axis=-1)
    _agree(fn, x)


def test_linear_bias_gradient_of_half_inputs_sums_in_float32():
    # 4096 rows of 0.01: a float16 running sum stalls near 32 (its spacing there is 1/32)
    x = tga.tensor(np.zeros((4096, 3)), dtype=np.float16)
    w = tga.tensor(np.zeros((2, 3)), dtype=np.float16, requires_grad=True)
    b = tga.tensor(np.zeros(2), dtype=np.float16, requires_grad=True)
    (F.linear(x, w, b) * tga.tensor(np.full((4096, 2), 0.01), dtype=np.float16)).sum().backward()
    assert b.grad.dtype == np.float16
    np.testing.assert_allclose(b.grad.numpy().astype(np.float64), 4096 * float(np.float16(0.01)), rtol=1e-3)
