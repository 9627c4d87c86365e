"""Every op family on float32 and float64 inputs (dtype kept through forward and backward,
Python scalars included) and on non-contiguous, strided and read-only inputs (transposed
views, step slices, broadcast views): same values as on a plain copy, gradients that
pass finite differences, and no op writes into its input."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import gradcheck

MASK = np.array([[True, False, True, True], [False, False, False, False], [True, True, False, True]])
IDS = np.array([[0, 2, 2], [1, 0, 2]])
TARGETS = np.array([3, -100, 1])


def K(x, arr):
    """A constant like x: same dtype and device."""
    return tga.Tensor(np.asarray(arr).astype(x.dtype), device=x.device)


def _other(x, shape, seed=1, low=0.5, high=1.5):
    return K(x, np.random.default_rng(seed).uniform(low, high, size=shape))


# name -> f(x) for x of shape (3, 4) with values in [0.5, 1.5]; each returns one tensor
OPS = {
    "add_scalar": lambda x: x + 1.5,
    "radd_scalar": lambda x: 1.5 + x,
    "sub_scalar": lambda x: x - 2,
    "rsub_scalar": lambda x: 2 - x,
    "mul_scalar": lambda x: x * 3,
    "rmul_scalar": lambda x: 0.5 * x,
    "div_scalar": lambda x: x / 3.0,
    "rdiv_scalar": lambda x: 2.0 / x,
    "pow_int": lambda x: x ** 2,
    "pow_float": lambda x: x ** 0.5,
    "rpow": lambda x: 2.0 ** x,
    "numpy_scalar": lambda x: x * np.float64(1.5) + np.float32(0.25),
    "add": lambda x: x + _other(x, (4,)),
    "mul": lambda x: x * _other(x, (3, 1)),
    "div": lambda x: x / _other(x, (1, 4)),
    "pow": lambda x: x ** _other(x, (3, 4), low=-1.0),
    "neg": lambda x: -x,
    "exp": F.exp, "log": F.log, "sqrt": F.sqrt, "tanh": F.tanh, "sigmoid": F.sigmoid,
    "relu": lambda x: F.relu(x - 1.0),
    "gelu_tanh": lambda x: F.gelu(x - 1.0, "tanh"),
    "gelu_exact": lambda x: F.gelu(x - 1.0, "none"),
    "abs": lambda x: F.abs(x - 1.0),
    "erf": lambda x: F.erf(x - 1.0),
    "maximum": lambda x: F.maximum(x, 0.93),
    "minimum": lambda x: F.minimum(x, _other(x, (4,))),
    "clip": lambda x: F.clip(x, 0.61, 1.17),
    "where": lambda x: F.where(MASK, x, 0.0),
    "masked_fill": lambda x: F.masked_fill(x, MASK, -1e9),
    "sum": lambda x: x.sum(axis=1),
    "mean": lambda x: x.mean(axis=0, keepdims=True),
    "max": lambda x: x.max(axis=1),
    "min": lambda x: x.min(),
    "var": lambda x: x.var(axis=1, ddof=1),
    "logsumexp": lambda x: x.logsumexp(axis=(0, 1)),
    "matmul": lambda x: x @ _other(x, (4, 2)),
    "rmatmul_batched": lambda x: _other(x, (2, 5, 3)) @ x,
    "matvec": lambda x: x @ _other(x, (4,)),
    "linear": lambda x: F.linear(x, _other(x, (5, 4)), _other(x, (5,))),
    "reshape": lambda x: x.reshape(2, 6),
    "flatten": lambda x: x.flatten(),
    "permute": lambda x: x.permute(1, 0),
    "transpose": lambda x: x.T,
    "swapaxes": lambda x: x.unsqueeze(0).swapaxes(0, 2),
    "expand": lambda x: x.unsqueeze(1).expand(3, 2, 4),
    "squeeze": lambda x: x.reshape(3, 1, 4).squeeze(1),
    "cat": lambda x: F.cat([x, x * 2, _other(x, (3, 1))], axis=1),
    "stack": lambda x: F.stack([x, x.exp()], axis=1),
    "split": lambda x: F.cat([p * (i + 1) for i, p in enumerate(x.split([1, 3], axis=1))], axis=1),
    "chunk": lambda x: F.cat([p * (i + 1) for i, p in enumerate(x.chunk(2, axis=0))], axis=0),
    "getitem_slice": lambda x: x[1:, ::2],
    "getitem_int_array": lambda x: x[[2, 0, 2]],
    "getitem_bool": lambda x: x[MASK],
    "gather": lambda x: x.gather(1, IDS.T),
    "embedding": lambda x: F.embedding(IDS, x, padding_idx=None),
    "softmax": lambda x: x.softmax(-1),
    "softmax_masked": lambda x: F.softmax(x * 3, -1, mask=MASK),
    "log_softmax": lambda x: x.log_softmax(0),
    "cross_entropy": lambda x: F.cross_entropy(x * 2, TARGETS, label_smoothing=0.1),
    "dropout": lambda x: (tga.manual_seed(7), F.dropout(x, 0.25))[1],  # reseeded: the same mask every call
    "layer_norm": lambda x: F.layer_norm(x, _other(x, (4,)), _other(x, (4,), seed=2)),
    "sdpa": lambda x: F.scaled_dot_product_attention(x, x * 0.5, _other(x, (3, 2)), is_causal=True),
    "sdpa_float_mask": lambda x: F.scaled_dot_product_attention(x, x, x, attn_mask=np.triu(np.full((3, 3), -2.0), 1)),
}


def _x(dtype, device):
    values = np.random.default_rng(0).uniform(0.5, 1.5, size=(3, 4))
    return tga.Tensor(values.astype(dtype), requires_grad=True, device=device)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPS))
def test_dtype_is_preserved_through_forward_and_backward(device, name, dtype):
    x = _x(dtype, device)
    y = OPS[name](x)
    assert y.dtype == dtype, f"{name}: {dtype.__name__} in, {y.dtype} out"
    g = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    y.backward(tga.Tensor(g, device=device))
    assert x.grad.dtype == dtype, f"{name}: gradient is {x.grad.dtype}"
    assert np.all(np.isfinite(x.grad.numpy()))


def test_int_and_bool_results_of_comparisons(device):
    x = _x(np.float32, device)
    assert (x > 1.0).dtype == np.bool_
    assert x.argmax(-1).dtype.kind == "i"
    assert (x.long() + 1).dtype == np.int64


def _layouts(device):
    """Ways to hand an op a (3, 4) float64 input whose memory is not a plain C-order block."""
    base = np.random.default_rng(0).uniform(0.5, 1.5, size=(4, 3))
    xp = tga.get_backend(device).xp
    out = {"transposed": xp.asarray(base).T,
           "step_slice": xp.asarray(np.repeat(base.T, 2, axis=1))[:, ::2]}
    if device == "cpu":
        read_only = np.array(base.T)
        read_only.flags.writeable = False
        out["read_only"] = read_only
    return out


@pytest.mark.parametrize("name", list(OPS))
def test_non_contiguous_and_read_only_inputs(device, name):
    fn = OPS[name]
    for layout, data in _layouts(device).items():
        x = tga.Tensor(data, requires_grad=True)
        assert x.device == device and x.shape == (3, 4)
        if layout != "read_only":
            assert not x.data.flags.c_contiguous
        plain = tga.Tensor(np.ascontiguousarray(x.numpy()), requires_grad=True, device=device)
        y, y_plain = fn(x), fn(plain)
        np.testing.assert_allclose(y.numpy(), y_plain.numpy(), rtol=1e-12, atol=1e-12, err_msg=f"{name} {layout}")
        # a transposed cotangent, so backward also meets a non-contiguous gradient
        g = np.random.default_rng(4).standard_normal(y.shape[::-1]).T
        y.backward(tga.Tensor(tga.get_backend(device).xp.asarray(g)))
        y_plain.backward(tga.Tensor(np.array(g, order="C"), device=device))
        np.testing.assert_allclose(x.grad.numpy(), plain.grad.numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{name} {layout}")
        before = x.numpy().copy()
        if name == "masked_fill":
            fn = lambda t: F.masked_fill(t, MASK, -1.0)  # noqa: E731  (1e9 would swamp the differences)
        gradcheck(fn, tga.Tensor(data, requires_grad=True), atol=1e-5, rtol=1e-4)
        np.testing.assert_array_equal(x.numpy(), before)  # no op wrote into its input
