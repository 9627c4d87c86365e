"""Tests generated from the op table (tinygrad_attn/functional/table.py), for every entry and
device: the forward against its NumPy reference, the gradient against central differences
(float64), the second derivative (gradgradcheck), Python-number operands, float32/float64
kept through forward and backward, and strided, broadcast and read-only inputs giving what a
plain copy gives without being written to. Also: the Tensor methods and the README's op list."""
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_attn as tga
from tinygrad_attn.functional import table
from tinygrad_attn.testing import broadcastable_shapes, gradcheck, gradgradcheck, matmul_shapes, shapes
from helpers import T, close, fixture_ok

ENTRIES = table.entries()
ids = lambda e: e.name  # noqa: E731


def draw_shapes(draw, entry, small):
    n = len(entry.inputs)
    if callable(entry.shapes):
        return entry.shapes(draw, small)
    if entry.shapes == "broadcast":
        return draw(broadcastable_shapes(max_dims=3 if small else 4, max_side=3 if small else 4))
    if entry.shapes == "matmul":
        return draw(matmul_shapes(max_batch_dims=1 if small else 2, max_side=3 if small else 4))
    if entry.shapes == "rows":
        x = draw(shapes(min_dims=1, max_dims=2 if small else 3, max_side=4))
        return (x,) + (x[-1:],) * (n - 1)
    return (draw(shapes(max_dims=3 if small else 4, max_side=3 if small else 5)),) * n


def draw_case(data, entry, device, small=False):
    shp = draw_shapes(data.draw, entry, small)
    arrays = [data.draw(d.strategy(s), label=f"input {i}") for i, (d, s) in enumerate(zip(entry.inputs, shp))]
    params = entry.params(data.draw, shp) if entry.params else {}
    return arrays, params, [T(a, device) for a in arrays]


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
@fixture_ok
@given(data=st.data())
def test_forward_matches_numpy_and_gradient_matches_differences(device, entry, data):
    arrays, params, ts = draw_case(data, entry, device)
    out = entry.fn(*ts, **params)
    if entry.ref is not None:
        close(out, entry.ref(*arrays, **params), rtol=entry.rtol, atol=entry.atol)
    if entry.differentiable:
        gradcheck(lambda *t: entry.fn(*t, **params), *ts, atol=entry.grad_tol[0], rtol=entry.grad_tol[1])


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.twice], ids=ids)
@fixture_ok
@given(data=st.data())
def test_second_derivative_matches_differences(device, entry, data):
    arrays, params, ts = draw_case(data, entry, device, small=True)
    # squared, so that the second derivative of a linear op is not trivially zero: it must
    # flow back through the graph of the first derivative
    # inputs over 16 elements are checked along random directions (cheaper than element by element)
    gradgradcheck(lambda *t: entry.fn(*t, **params) ** 2, *ts, atol=1e-4, rtol=1e-3, max_elementwise=16)


def _first_derivative(entry, params, ts, cotangent, create_graph):
    """d(sum(fn(ts) * cotangent))/d(ts) as arrays: with create_graph=False the engine may take an op's
    array-level fast backward, with create_graph=True it must build the Tensor-level one."""
    out = entry.fn(*ts, **params)
    loss = (out * tga.Tensor(cotangent, device=out.device)).sum()
    grads = tga.grad(loss, ts, create_graph=create_graph, allow_unused=True)
    return [None if g is None else g.numpy() for g in grads]


def _case_with_cotangent(data, entry, device):
    """A small drawn case, a fixed random cotangent of its output's shape, and the generator it came from."""
    arrays, params, ts = draw_case(data, entry, device, small=True)
    with tga.no_grad():
        shape = entry.fn(*ts, **params).shape
    rng = np.random.default_rng(5)
    return arrays, params, ts, rng.standard_normal(shape), rng


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.twice and e.differentiable], ids=ids)
@fixture_ok
@given(data=st.data())
def test_create_graph_first_derivative_equals_the_plain_one(device, entry, data):
    # gradgradcheck differentiates the create_graph derivative, so a Tensor-level backward that
    # is wrong but differentiable passes it; the plain derivative is the one gradcheck proved
    arrays, params, ts, cotangent, _ = _case_with_cotangent(data, entry, device)
    plain = _first_derivative(entry, params, ts, cotangent, create_graph=False)
    graphed = _first_derivative(entry, params, ts, cotangent, create_graph=True)
    for i, (a, b) in enumerate(zip(plain, graphed)):
        assert (a is None) == (b is None), f"{entry.name}: input {i} has a gradient only one way"
        if a is not None:
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12, err_msg=f"{entry.name}: input {i}")


SAMPLED_SECOND_ORDER = ["tanh", "softmax", "log_softmax", "layer_norm", "matmul", "gelu_tanh", "gelu_exact", "div", "pow",
                        "logsumexp", "cross_entropy", "scaled_dot_product_attention", "sigmoid"]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.name in SAMPLED_SECOND_ORDER and e.twice], ids=ids)
@fixture_ok
@given(data=st.data())
def test_hessian_vector_product_equals_differences_of_the_plain_gradient(device, entry, data):
    # an independent second-order check: the create_graph Hessian-vector product against
    # central differences of the first derivative computed WITHOUT a graph
    arrays, params, ts, cotangent, rng = _case_with_cotangent(data, entry, device)
    directions = [rng.standard_normal(a.shape) for a in arrays]
    loss = (entry.fn(*ts, **params) * tga.Tensor(cotangent, device=device)).sum()
    grads = tga.grad(loss, ts, create_graph=True, allow_unused=True)
    used = [i for i, g in enumerate(grads) if g is not None]
    directional = sum((grads[i] * tga.Tensor(directions[i], device=device)).sum() for i in used)
    hvp = [None if g is None else g.numpy() for g in tga.grad(directional, ts, allow_unused=True)]
    eps = 1e-5

    def shifted(sign):
        moved = [T(a + sign * eps * d, device) for a, d in zip(arrays, directions)]
        return _first_derivative(entry, params, moved, cotangent, create_graph=False)
    up, down = shifted(+1), shifted(-1)
    for i in used:
        numeric = (up[i] - down[i]) / (2 * eps)
        got = np.zeros_like(numeric) if hvp[i] is None else hvp[i]
        np.testing.assert_allclose(got, numeric, rtol=1e-3, atol=1e-4, err_msg=f"{entry.name}: input {i}")


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.scalar is not None], ids=ids)
@fixture_ok
@given(data=st.data())
def test_python_number_operands_on_either_side(device, entry, data):
    s = entry.scalar
    shape = data.draw(shapes(), label="shape")
    a, b = (data.draw(d.strategy(shape), label=f"input {i}") for i, d in enumerate(entry.inputs))
    ta, tb = T(a, device), T(b, device)
    close(entry.fn(ta, s), entry.ref(a, s), rtol=entry.rtol, atol=entry.atol)
    gradcheck(lambda x: entry.fn(x, s), ta)
    close(entry.fn(s, tb), entry.ref(s, b), rtol=entry.rtol, atol=entry.atol)
    gradcheck(lambda y: entry.fn(s, y), tb)


# ---------------------------------------------------------------- dtypes and memory layouts

def layout_inputs(entry, dtype, device, first=None):
    rng = np.random.default_rng(0)
    shp = entry.layout_shapes or ((3, 4),) * len(entry.inputs)
    arrays = [d.sample(rng, s) for d, s in zip(entry.inputs, shp)]
    ts = [tga.Tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
    if first is not None:
        ts[0] = first
    return ts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_dtype_is_kept_through_forward_and_backward(device, entry, dtype):
    ts = layout_inputs(entry, dtype, device)
    y = entry.fn(*ts, **entry.layout_params)
    expected = entry.out_dtype or dtype
    assert y.dtype == expected, f"{entry.name}: {dtype.__name__} in, {y.dtype} out"
    if not entry.differentiable:
        return
    g = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    y.backward(tga.Tensor(g, device=device))
    for t in ts:
        assert t.grad.dtype == dtype, f"{entry.name}: gradient is {t.grad.dtype}"
        assert np.all(np.isfinite(t.grad.numpy()))


def _layouts(shape, device, domain):
    """Ways to hand an op a float64 input whose memory is not one plain C-order block."""
    base = np.ascontiguousarray(domain.sample(np.random.default_rng(0), shape).T)
    xp = tga.get_backend(device).xp
    out = {"transposed": xp.asarray(base).T}
    if len(shape) == 2:
        out["step_slice"] = xp.asarray(np.repeat(base.T, 2, axis=1))[:, ::2]
    if device == "cpu":
        read_only = np.array(base.T)
        read_only.flags.writeable = False
        out["read_only"] = read_only
    return out


@pytest.mark.parametrize("entry", ENTRIES, ids=ids)
def test_strided_and_read_only_inputs(device, entry):
    shape = (entry.layout_shapes or ((3, 4),))[0]
    for layout, data in _layouts(shape, device, entry.inputs[0]).items():
        x = tga.Tensor(data, requires_grad=True)
        plain = tga.Tensor(np.ascontiguousarray(x.numpy()), requires_grad=True, device=device)
        rest = layout_inputs(entry, np.float64, device)[1:]
        y, y_plain = (entry.fn(t, *rest, **entry.layout_params) for t in (x, plain))
        np.testing.assert_allclose(y.numpy(), y_plain.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{entry.name} {layout}")
        if not entry.differentiable:
            continue
        g = np.random.default_rng(4).standard_normal(y.shape[::-1]).T  # a transposed cotangent
        y.backward(tga.Tensor(tga.get_backend(device).xp.asarray(g)))
        y_plain.backward(tga.Tensor(np.array(g, order="C"), device=device))
        np.testing.assert_allclose(x.grad.numpy(), plain.grad.numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{entry.name} {layout}")
        before = x.numpy().copy()
        gradcheck(lambda t: entry.fn(t, *rest, **entry.layout_params), tga.Tensor(data, requires_grad=True),
                  atol=1e-5, rtol=1e-4)
        np.testing.assert_array_equal(x.numpy(), before)  # no op wrote into its input


# ---------------------------------------------------------------- methods and docs

@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.method], ids=ids)
def test_tensor_method_is_the_public_function(entry):
    method = getattr(tga.Tensor, entry.public, None)
    assert callable(method), f"Tensor has no method {entry.public}"
    ts = layout_inputs(entry, np.float64, "cpu")
    if entry.fn is getattr(tga.functional, entry.public):
        got = getattr(ts[0], entry.public)(*ts[1:], **entry.layout_params)
        np.testing.assert_array_equal(got.numpy(), entry.fn(*ts, **entry.layout_params).numpy())


def test_readme_op_list_is_the_table():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- op table -->")[1]
    listed = re.findall(r"`([a-z_0-9]+)`", block)
    assert listed == table.public_names(), "README's op list differs from functional/table.py; paste the output of " \
        "python -c 'from tinygrad_attn.functional.table import readme_list; print(readme_list())'"
