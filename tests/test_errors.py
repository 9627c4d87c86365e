"""Errors: each mistake raises the documented type, and its message names the op and
what it got (shapes, dtypes, devices, axes) so a user can fix the call without a debugger."""
import re

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn
from tinygrad_attn.errors import DeviceError, DTypeError, GraphError, ShapeError, TinygradAttnError
from tinygrad_attn.ops.linalg import MatMul


def raises(exc_type, *fragments):
    """pytest.raises that also requires every fragment to appear in the message (literally)."""
    return pytest.raises(exc_type, match="(?s)" + ".*".join(re.escape(f) for f in fragments))


@pytest.fixture
def x(device):
    return tga.randn(2, 3, device=device)


def test_hierarchy_refines_builtins():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, TinygradAttnError)
    assert issubclass(DTypeError, TypeError) and issubclass(DTypeError, TinygradAttnError)
    assert issubclass(DeviceError, TinygradAttnError) and issubclass(GraphError, TinygradAttnError)


# ---------------------------------------------------------------- shapes

def test_matmul_inner_dims(x, device):
    with raises(ShapeError, "matmul", "(2, 3)", "(4, 5)"):
        x @ tga.randn(4, 5, device=device)
    with raises(ShapeError, "matmul", "(3,)", "(2, 3)"):
        F.matmul(tga.randn(3, device=device), x)


def test_matmul_batch_dims_and_0d(device):
    with raises(ShapeError, "matmul", "(2, 2, 3)", "(3, 3, 2)"):
        tga.randn(2, 2, 3, device=device) @ tga.randn(3, 3, 2, device=device)
    with raises(ShapeError, "matmul", "()", "(2, 3)"):
        F.matmul(tga.tensor(1.0, device=device), tga.randn(2, 3, device=device))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
def test_broadcast_mismatch(x, device, op):
    with raises(ShapeError, op, "(2, 3)", "(4,)"):
        getattr(F, op)(x, tga.rand(4, device=device) + 0.5)


def test_broadcast_mismatch_via_operator(x, device):
    with raises(ShapeError, "add", "(2, 3)", "(3, 2)"):
        x + tga.randn(3, 2, device=device)


def test_where_shapes(x, device):
    with raises(ShapeError, "where", "(2, 3)", "(4,)"):
        F.where(np.ones((2, 3), dtype=bool), x, tga.randn(4, device=device))


def test_reshape(x):
    with raises(ShapeError, "reshape", "(2, 3)", "(4, 2)"):
        x.reshape(4, 2)
    with raises(ShapeError, "reshape", "(2, 3)", "(4, -1)"):
        x.reshape(4, -1)
    with raises(ShapeError, "reshape", "(-1, -1)"):
        x.reshape(-1, -1)


def test_cat_and_stack(x, device):
    y = tga.randn(3, 3, device=device)
    with raises(ShapeError, "cat", "(2, 3)", "(3, 3)"):
        F.cat([x, y], axis=1)
    with raises(ShapeError, "cat", "(2, 3)", "(3,)"):
        F.cat([x, tga.randn(3, device=device)])
    with raises(ShapeError, "stack", "(2, 3)", "(3, 3)"):
        F.stack([x, y])
    with raises(ValueError, "cat"):
        F.cat([])


def test_cross_entropy_target_shape(x, device):
    with raises(ShapeError, "cross_entropy", "(2, 3)", "(2,)", "(3,)"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with raises(ShapeError, "cross_entropy", "(2, 3)", "(2, 1)"):
        F.cross_entropy(x, tga.Tensor(np.zeros((2, 1), dtype=np.int64), device=device))


def test_other_shape_checks(x, device):
    with raises(ShapeError, "expand", "(2, 3)", "(3, 3)"):
        x.expand(3, 3)
    with raises(ShapeError, "permute", "(0, 0)", "(2, 3)"):
        x.permute(0, 0)
    with raises(ShapeError, "squeeze", "(2, 3)"):
        x.squeeze(0)
    with raises(ShapeError, "split", "[1, 1]", "(2, 3)"):
        x.split([1, 1], axis=1)
    with raises(ShapeError, "gather", "(2,)", "(2, 3)"):
        x.gather(1, np.zeros(2, dtype=np.int64))
    with raises(ShapeError, "layer_norm", "(4,)", "(2, 3)"):
        F.layer_norm(x, tga.ones(4, device=device))
    with raises(ShapeError, "linear", "(2, 3)", "(4, 5)"):
        F.linear(x, tga.randn(4, 5, device=device))
    with raises(ShapeError, "scaled_dot_product_attention", "(2, 3)", "(4, 5)"):
        F.scaled_dot_product_attention(x, tga.randn(4, 5, device=device), tga.randn(4, 5, device=device))
    with raises(ShapeError, "scaled_dot_product_attention", "(2, 2, 3)", "(3, 2, 3)"):
        F.scaled_dot_product_attention(tga.randn(2, 2, 3, device=device), tga.randn(3, 2, 3, device=device),
                                       tga.randn(3, 2, 3, device=device))
    for mask in (np.ones((3, 3), dtype=bool), np.zeros((3, 3))):  # boolean and float masks, both paths
        for watched in (True, False):
            with raises(ShapeError, "scaled_dot_product_attention", "(3, 3)", "(2, 2)"):
                F.scaled_dot_product_attention(x[:, :2], x[:, :2], x, attn_mask=mask, return_weights=watched)
    mha = nn.MultiHeadAttention(4, 2).to(device)
    for watched in (True, False):
        with raises(ShapeError, "MultiHeadAttention", "attn_mask", "(5, 5)", "(1, 2, 3, 3)"):
            mha(tga.randn(1, 3, 4, device=device), attn_mask=np.ones((5, 5), dtype=bool), need_weights=watched)
    with raises(ShapeError, "softmax", "(3,)", "(2, 4)"):
        F.softmax(tga.randn(2, 4, device=device), -1, mask=np.ones(3, dtype=bool))
    with raises(IndexError, "getitem", "(2, 3)"):
        x[5]


@pytest.mark.parametrize("call, fragments", [
    (lambda t: t.sum(axis=2), ("sum", "axis 2", "2 dims")),
    (lambda t: t.mean(axis=(0, 3)), ("mean", "axis 3", "2 dims")),
    (lambda t: t.max(-3), ("max", "axis -3", "2 dims")),
    (lambda t: t.var(axis=5), ("var", "axis 5", "2 dims")),
    (lambda t: t.logsumexp(axis=2), ("logsumexp", "axis 2", "2 dims")),
    (lambda t: t.softmax(5), ("softmax", "axis 5", "2 dims")),
    (lambda t: t.log_softmax(-3), ("log_softmax", "axis -3", "2 dims")),
    (lambda t: t.unsqueeze(4), ("unsqueeze", "axis 4", "2 dims")),
    (lambda t: F.cat([t, t], axis=2), ("cat", "axis 2", "2 dims")),
    (lambda t: t.sum(axis=(1, 1)), ("sum", "repeated axis")),
])
def test_axis_out_of_range(x, call, fragments):
    with raises(ShapeError, *fragments):
        call(x)


# ---------------------------------------------------------------- dtypes

def test_int_tensor_cannot_require_grad(device):
    with raises(DTypeError, "requires_grad", "int64", "(3,)"):
        tga.Tensor([1, 2, 3], requires_grad=True, device=device)


def test_float_only_ops_reject_ints(device):
    ints = tga.arange(6, device=device).reshape(2, 3)
    for op in ("softmax", "log_softmax"):
        with raises(DTypeError, op, "int64", "(2, 3)"):
            getattr(F, op)(ints, -1)
    with raises(DTypeError, "cross_entropy", "int64", "(2, 3)"):
        F.cross_entropy(ints, np.array([0, 1]))
    with raises(DTypeError, "layer_norm", "int64"):
        F.layer_norm(ints)


def test_class_ids_must_be_integers(x, device):
    with raises(DTypeError, "cross_entropy", "float"):
        F.cross_entropy(x, np.array([0.0, 1.0]))
    with raises(DTypeError, "embedding", "float64"):
        F.embedding(np.array([0.0, 1.0]), tga.randn(4, 3, device=device))


@pytest.mark.parametrize("op", ["softmax", "masked_fill", "where"])
def test_bad_mask_dtype(x, device, op):
    mask = np.ones((2, 3), dtype=np.int64)
    with raises(DTypeError, op, "boolean", "int64", "(2, 3)"):
        if op == "softmax":
            F.softmax(x, -1, mask=mask)
        elif op == "masked_fill":
            F.masked_fill(x, tga.Tensor(mask, device=device), 0.0)
        else:
            F.where(mask, x, 0.0)


# ---------------------------------------------------------------- class ids out of range

def test_out_of_range_class_ids(x, device):
    with raises(IndexError, "cross_entropy", "[0, 3)", "5"):
        F.cross_entropy(x, np.array([0, 5]))
    with raises(IndexError, "cross_entropy", "[0, 3)", "-1"):
        F.cross_entropy(x, np.array([-1, 0]))
    # ignore_index is not out of range
    F.cross_entropy(x, np.array([-100, 2]))
    w = tga.randn(4, 3, device=device)
    with raises(IndexError, "embedding", "[0, 4)", "9"):
        F.embedding(np.array([0, 9]), w)
    with raises(IndexError, "embedding", "[0, 4)", "-2"):
        F.embedding(tga.Tensor(np.array([-2, 1]), device=device), w)


# ---------------------------------------------------------------- devices

def test_mixing_devices_names_op_shapes_and_devices(device):
    a = tga.randn(2, 3, device=device)
    if device == "cuda":
        b, other = tga.randn(3), "cpu"
    else:
        # a CPU-only machine has no second device: label one tensor with a fake device name,
        # which the device check must catch before any array work
        b, other = tga.randn(3), "fake0"
        b._device = other
    with raises(DeviceError, "add", "(2, 3) on " + device, "(3,) on " + other):
        a + b
    with raises(DeviceError, "mul", "(3,) on " + other, "(2, 3) on " + device):
        b * a
    c = tga.randn(3, 4)
    c._device = other if device == "cpu" else "cpu"
    with raises(DeviceError, "matmul", "(2, 3)", "(3, 4)"):
        a @ c


def test_mask_on_other_device(device):
    a = tga.randn(2, 3, device=device)
    mask = tga.Tensor(np.ones((2, 3), dtype=bool))
    mask._device = "fake0" if device == "cpu" else "cpu"
    with raises(DeviceError, mask.device, device):
        F.masked_fill(a, mask, 0.0)


def test_unknown_device_name():
    with raises(DeviceError, "tpu", "'cpu' or 'cuda'"):
        tga.zeros(2, device="tpu")


# ---------------------------------------------------------------- graph misuse

def test_backward_on_non_scalar(x):
    y = x.requires_grad_() * 2
    with raises(GraphError, "backward", "(2, 3)"):
        y.backward()
    with raises(GraphError, "grad", "(2, 3)"):
        tga.grad(y, x)


def test_second_backward_through_freed_graph(x):
    x.requires_grad_()
    y = (x.exp() * 2).sum()
    y.backward()
    with raises(GraphError, "second time", "retain_graph=True"):
        y.backward()
    with raises(GraphError, "second time"):
        tga.grad(y, x)


def test_backward_of_tensor_without_graph(x):
    with raises(GraphError, "backward", "does not require grad"):
        (x * 2).sum().backward()
    with raises(GraphError, "grad", "(2, 3)", "does not require grad"):
        tga.grad((x.requires_grad_() * 2).sum(), [tga.randn(2, 3, device=x.device)])


def test_wrong_grad_shape(x):
    y = x.requires_grad_() * 2
    with raises(ShapeError, "backward", "(3,)", "(2, 3)"):
        y.backward(np.ones(3))


def test_bad_arguments_are_value_errors(x):
    with raises(ValueError, "cross_entropy", "reduction", "'avg'"):
        F.cross_entropy(x, np.array([0, 1]), reduction="avg")
    with raises(ValueError, "cross_entropy", "label_smoothing"):
        F.cross_entropy(x, np.array([0, 1]), label_smoothing=1.5)
    with raises(ValueError, "dropout", "1.0"):
        F.dropout(x, 1.0)
    with raises(ValueError, "split", "0"):
        x.split(0)
    with raises(ValueError, "item", "(2, 3)"):
        x.item()


# ---------------------------------------------------------------- the run-directory errors live here too

def test_non_finite_tokenizer_data_and_optimizer_errors_are_in_the_hierarchy():
    from tinygrad_attn import errors, optim, train
    assert train.NonFiniteError is errors.NonFiniteError and issubclass(errors.NonFiniteError, FloatingPointError)
    for cls in (errors.TokenizerError, errors.DataError, errors.ConfigError, errors.CheckpointError):
        assert issubclass(cls, tga.TinygradAttnError) and issubclass(cls, ValueError)
    opt = optim.AdamW([tga.zeros(3, requires_grad=True)])
    with pytest.raises(tga.CheckpointError, match="from SGD"):
        opt.load_state_dict({"type": "SGD", "state": {}, "param_groups": []})


@pytest.mark.parametrize("content, why", [(b'{"type": "char", "chars": ["a", "b"', "not valid JSON"),
                                          (b"\xff\xfe\x00garbage", "not UTF-8"),
                                          (b"[1, 2]", "holds a JSON list"),
                                          (b'{"type": "char"}', "does not describe a valid tokenizer")])
def test_a_corrupted_tokenizer_file_is_a_tokenizer_error_naming_the_file(tmp_path, content, why):
    from tinygrad_attn.tokenizers import CharTokenizer, load_tokenizer
    file = tmp_path / "tokenizer.json"
    file.write_bytes(content)
    for load in (load_tokenizer, CharTokenizer.load):
        with pytest.raises(tga.TokenizerError, match=why) as info:
            load(file)
        assert str(file) in str(info.value)


def test_tensor_data_of_tensors_stacks_their_values_and_refuses_what_is_not_a_number():
    import tinygrad_attn as tga
    from tinygrad_attn.errors import DTypeError, ShapeError
    t = tga.Tensor([tga.Tensor([1.5]), tga.Tensor([2.5])])
    assert t.numpy().tolist() == [[1.5], [2.5]] and t.dtype == np.float32
    assert tga.Tensor([1.5, 2]).dtype == np.float32 and tga.Tensor([1, 2]).dtype == np.int64
    for data, what in ((["a", "b"], "strings"), (None, "Python objects"), ([None, 1.0], "Python objects"),
                       ("abc", "strings"), (np.array(["x"]), "strings")):
        with pytest.raises(DTypeError, match=what):
            tga.Tensor(data)
    with pytest.raises(ShapeError, match="different lengths"):
        tga.Tensor([[1, 2], [3]])


def test_an_array_or_none_where_a_tensor_belongs_is_a_dtype_error_naming_what_came(device):
    """A NumPy array handed to a module or an op, or None/str beside a tensor, is named, never a
    "no attribute 'backend'" traceback or a silent NaN."""
    x = tga.randn(2, 4, device=device)
    with raises(DTypeError, "LayerNorm", "ndarray of shape (2, 4)", "Tensor(...)"):
        nn.LayerNorm(4).to(device)(np.ones((2, 4), np.float32))

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(4, 3)

        def forward(self, x):
            return self.inner(x)
    with raises(DTypeError, "linear", "ndarray(2, 4)", "Tensor(...)"):
        Outer().to(device)(x=np.ones((2, 4), np.float32))
    with raises(DTypeError, "NoneType", "(2, 4)", "a number or a numeric array"):
        x + None
    with raises(DTypeError, "str", "a number or a numeric array"):
        x * "a"
    with raises(DTypeError, "at least one Tensor", "ndarray, ndarray"):
        F.add(np.ones(2), np.ones(2))
    with raises(DTypeError, "matmul", "expected Tensors", "ndarray(4, 3)"):
        MatMul.apply(x, np.ones((4, 3)))   # the graph's own entry refuses what is not a Tensor

    class Buggy(nn.Module):   # a user's own AttributeError is not mistaken for a wrong argument
        def forward(self, x):
            return x.no_such_method()
    with pytest.raises(AttributeError, match="no_such_method"):
        Buggy()(x)
