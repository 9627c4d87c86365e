"""Regression tests for wrong answers and crashes found by porting other projects' test
cases (issue 12): pow at a base of 0, masks that cannot take a gradient, transpose,
logical_not, min of bools, gather's range check, float16 reductions, clip_grad_norm_ with NaN."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn
from tinygrad_attn.optim import clip_grad_norm_
from helpers import T, close


# ---------------------------------------------------------------- pow at a base of 0 (item 2)

def test_pow_scalar_zero_exponent_at_zero_has_zero_gradient():
    x = T([0.0, 2.0], "cpu")
    (x ** 0.0).sum().backward()
    close(x.grad, [0.0, 0.0])


def test_pow_gradient_in_the_exponent_at_a_zero_base():
    e = T([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0], "cpu")
    with np.errstate(divide="ignore"):
        F.pow(0.0, e).sum().backward()
    np.testing.assert_array_equal(e.grad.numpy(), [-np.inf, -np.inf, 0, 0, 0, 0])
    x, y = T([0.0], "cpu"), T([0.3], "cpu")
    with np.errstate(divide="ignore"):  # d/dx 0^0.3 is inf, rightly
        (x ** y).sum().backward()
    close(y.grad, [0.0])
    b, p = T([0.0, 0.0], "cpu"), T([0.0, 2.0], "cpu")
    (b ** p).sum().backward()
    close(b.grad, [0.0, 0.0])  # d/db b^0 = 0, d/db b^2 = 2b = 0


# ---------------------------------------------------------------- attention masks (items 3, 4, 6)

@pytest.mark.parametrize("watched", [False, True])
def test_a_float_attn_mask_that_requires_grad_gets_its_gradient(watched):
    """Refused before issue 23; now a learned bias (tests/test_attention.py checks its values)."""
    q = tga.randn(1, 3, 4)
    mask = tga.zeros(3, 3, requires_grad=True)
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=mask, return_weights=watched)
    ((out[0] if watched else out) ** 2).sum().backward()
    assert mask.grad is not None and mask.grad.shape == (3, 3) and np.abs(mask.grad.numpy()).sum() > 0
    F.scaled_dot_product_attention(q, q, q, attn_mask=mask.detach(), return_weights=watched)  # a constant is fine


def test_a_uint8_attn_mask_is_refused():
    q = tga.randn(3, 2)
    with pytest.raises(tga.DTypeError, match="uint8.*boolean"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.eye(3, dtype=np.uint8))


@pytest.mark.parametrize("watched", [False, True])
def test_attention_output_shape_comes_from_broadcasting_not_mask_values(watched):
    q = tga.randn(1, 2, 4, 8)
    for mask in (np.ones((5, 1, 4, 4), bool), np.tril(np.ones((5, 1, 4, 4), bool))):
        out = F.scaled_dot_product_attention(q, q, q, attn_mask=mask, return_weights=watched)
        assert (out[0] if watched else out).shape == (5, 2, 4, 8)


# ---------------------------------------------------------------- shapes and logic (items 7, 9, 10, 11)

def test_transpose_of_two_axes_always_swaps():
    x = tga.Tensor(np.arange(6.0).reshape(2, 3))
    assert x.transpose(0, 1).shape == (3, 2)
    np.testing.assert_array_equal(x.transpose(0, 1).numpy(), x.numpy().T)
    np.testing.assert_array_equal(x.transpose(1, 0).numpy(), x.numpy().T)
    y = tga.Tensor(np.arange(24.0).reshape(2, 3, 4))
    assert y.transpose(0, 2).shape == (4, 3, 2)
    assert y.transpose().shape == (4, 3, 2)


def test_logical_not_gives_booleans():
    np.testing.assert_array_equal(F.logical_not(tga.Tensor([0, 1, 2])).numpy(), [True, False, False])
    np.testing.assert_array_equal(F.logical_not(tga.Tensor([0.0, 1.5])).numpy(), [True, False])
    np.testing.assert_array_equal((~tga.Tensor([True, False])).numpy(), [False, True])
    np.testing.assert_array_equal((~tga.Tensor([0, 1])).numpy(), [-1, -2])  # bitwise on integers, as PyTorch
    with pytest.raises(tga.DTypeError, match="invert"):
        ~tga.Tensor([1.0])


def test_min_of_bools_and_ints():
    assert F.min(tga.Tensor([True, False])).item() is False
    np.testing.assert_array_equal(tga.Tensor([[3, 1], [2, 5]]).min(axis=1).numpy(), [1, 2])
    x = T([[3.0, 1.0, 1.0]], "cpu")
    x.min().backward()
    close(x.grad, [[0.0, 0.5, 0.5]])


def test_gather_refuses_out_of_range_indices():
    x = tga.randn(2, 3)
    for bad in (-1, 3):
        with pytest.raises(IndexError, match=r"gather.*\[0, 3\)"):
            x.gather(1, np.array([[0, bad], [1, 2]]))


# ---------------------------------------------------------------- float16 on the CPU (items 8, 12)

def test_layer_norm_keeps_the_input_dtype_without_weight_and_bias():
    for dtype in (np.float16, np.float32):
        assert F.layer_norm(tga.randn(3, 4).astype(dtype)).dtype == dtype


def test_float16_reductions_accumulate_in_float32():
    ones = tga.Tensor(np.ones(70_000, np.float16))
    assert ones.mean().dtype == np.float16 and ones.mean().item() == 1.0
    p = F.softmax(tga.Tensor(np.zeros(70_000, np.float16)), -1)
    assert p.dtype == np.float16
    np.testing.assert_allclose(p.numpy().astype(np.float64), 1 / 70_000, rtol=1e-2)  # a float16 subnormal
    lsm = F.log_softmax(tga.Tensor(np.zeros(70_000, np.float16)), -1)
    np.testing.assert_allclose(lsm.numpy().astype(np.float64), -np.log(70_000), rtol=1e-3)
    ce = F.cross_entropy(tga.Tensor(np.zeros((1, 70_000), np.float16)), np.array([0]))
    np.testing.assert_allclose(float(ce.item()), np.log(70_000), rtol=1e-3)


def test_float16_layer_norm_of_large_rows():
    x = tga.Tensor((np.arange(512) % 7 * 20.0).astype(np.float16)[None], requires_grad=True)  # sum of squares >> 65504
    w, b = tga.ones(512, dtype=np.float16, requires_grad=True), tga.zeros(512, dtype=np.float16, requires_grad=True)
    y = F.layer_norm(x, w, b)
    ref = x.numpy().astype(np.float64)
    ref = (ref - ref.mean()) / np.sqrt(ref.var() + 1e-5)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.numpy().astype(np.float64), ref, atol=1e-2)
    y.backward(tga.Tensor(np.linspace(-1, 1, 512).astype(np.float16)[None]))
    assert x.grad.dtype == np.float16 and np.all(np.isfinite(x.grad.numpy()))
    assert np.all(np.isfinite(w.grad.numpy())) and w.grad.dtype == np.float16


# ---------------------------------------------------------------- clip_grad_norm_ (item 13)

def test_clip_grad_norm_with_a_nan_gradient_scales_all_gradients():
    a, b = tga.Tensor([1.0, 2.0], requires_grad=True), tga.Tensor([3.0], requires_grad=True)
    a.grad, b.grad = tga.Tensor([np.nan, 1.0]), tga.Tensor([4.0])
    total = clip_grad_norm_([a, b], 1.0)
    assert np.isnan(total)
    assert np.all(np.isnan(a.grad.numpy())) and np.all(np.isnan(b.grad.numpy()))  # as PyTorch: nothing passes unscaled
    a.grad = tga.Tensor([np.inf, 1.0])
    with pytest.raises(tga.NonFiniteError, match="clip_grad_norm_"):
        clip_grad_norm_([a, b], 1.0, error_if_nonfinite=True)


def test_float16_var_logsumexp_and_cross_entropy_mean_accumulate_in_float32():
    rows = tga.Tensor((np.arange(70_000) % 2 * 200.0).astype(np.float16))  # squares of 100 add up past 65504
    v = rows.var()
    assert v.dtype == np.float16 and float(v.item()) == 10_000.0
    lse = F.logsumexp(tga.Tensor(np.zeros(70_000, np.float16)))
    np.testing.assert_allclose(float(lse.item()), np.log(70_000), rtol=1e-3)
    ce = F.cross_entropy(tga.Tensor(np.zeros((70_000, 4), np.float16)), np.zeros(70_000, np.int64))
    assert ce.dtype == np.float16
    np.testing.assert_allclose(float(ce.item()), np.log(4), rtol=1e-3)


def test_sums_of_bools_and_ints_count():
    assert tga.Tensor([True, True, False]).sum().item() == 2
    assert tga.Tensor(np.array([200, 100], np.uint8)).sum().item() == 300  # NumPy's widening, as PyTorch
