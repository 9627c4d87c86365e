"""The dtype rules (tinygrad_attn/dtypes.py): integers and bools meeting floats, or passed to
float ops, give float32 as in PyTorch; a gradient always has its leaf's dtype; matmul of two
different float dtypes is refused."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.dtypes import result_dtype


def test_integer_tensors_meet_floats_as_float32():
    assert (tga.Tensor(1) + 0.5).dtype == np.float32
    assert (0.5 * tga.Tensor([1, 2])).dtype == np.float32
    assert F.exp(tga.Tensor(2)).dtype == np.float32
    assert F.sqrt(tga.Tensor([4, 9])).dtype == np.float32
    q = tga.Tensor([5, 6, 7]) / tga.Tensor([1, 2, 3])
    assert q.dtype == np.float32
    np.testing.assert_allclose(q.numpy(), [5, 3, 7 / 3], rtol=1e-6)
    assert (tga.Tensor(np.array([4, 9], np.int32)) ** 0.5).dtype == np.float32
    assert (tga.Tensor(np.array([1, 2], np.int64)) + tga.Tensor([0.5, 0.5])).dtype == np.float32
    assert (tga.Tensor([True, False]) * 1.5).dtype == np.float32


def test_integers_stay_integers_and_python_numbers_are_weak():
    i32 = tga.Tensor(np.array([1, 2], np.int32))
    assert (i32 + 2).dtype == np.int32          # a Python int does not widen an int32 tensor
    assert (i32 * i32).dtype == np.int32
    assert (tga.Tensor([1, 2]) ** 2).dtype == np.int64
    x16 = tga.Tensor(np.ones(2, np.float16))
    assert (x16 * 2.5).dtype == np.float16      # nor a Python float a float16 one
    assert (x16 + np.float64(1.0)).dtype == np.float16


@pytest.mark.parametrize("a, b, expected", [
    (np.float32, np.float64, np.float64), (np.float16, np.float32, np.float32),
    (np.int64, np.float16, np.float16), (np.bool_, np.int32, np.int32), (np.int8, np.uint8, np.int16),
])
def test_result_dtype_of_two_tensors(a, b, expected):
    ta, tb = tga.Tensor(np.ones(2, a)), tga.Tensor(np.ones(2, b))
    assert result_dtype(ta, tb) == expected
    assert (ta + tb).dtype == expected


def test_result_dtype_with_python_numbers():
    i64, f16 = tga.Tensor([1]), tga.Tensor(np.ones(1, np.float16))
    assert result_dtype(i64, 0.5) == np.float32
    assert result_dtype(i64, 2) == np.int64
    assert result_dtype(f16, 0.5) == np.float16
    assert result_dtype(tga.Tensor([True]), 3) == np.int64
    assert result_dtype(2, 0.5) == np.float32


def test_gradient_has_its_leafs_dtype_when_dtypes_mix():
    x = tga.Tensor(np.ones(3, np.float32), requires_grad=True)
    w = tga.Tensor(np.full(3, 2.0), requires_grad=True)  # float64
    y = x * w
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_gradient_has_its_leafs_dtype_with_create_graph():
    x = tga.Tensor(np.ones(3, np.float32), requires_grad=True)
    w = tga.Tensor(np.full(3, 2.0), requires_grad=True)
    (gx,) = tga.grad((x * x * w).sum(), x, create_graph=True)
    assert gx.dtype == np.float32
    (x * x * w).sum().backward(create_graph=True)
    assert x.grad.dtype == np.float32


def test_matmul_of_different_float_dtypes_is_refused():
    a, b = tga.Tensor(np.ones((2, 3), np.float32)), tga.Tensor(np.ones((3, 4)))
    with pytest.raises(tga.DTypeError, match=r"matmul.*float32.*float64"):
        a @ b
    with pytest.raises(tga.DTypeError, match=r"linear.*float32.*float64"):
        F.linear(a, tga.Tensor(np.ones((4, 3))))
    assert (tga.Tensor(np.ones((2, 3), np.int64)) @ b).dtype == np.float64  # an int operand takes the float's dtype
