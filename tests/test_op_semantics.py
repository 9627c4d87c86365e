"""Behaviour of the newer ops that the op table's generated checks do not pin down: factories,
integer // and %, zero gradients of rounding, loss edge cases, scatter's repeats, topk's
gradient, grouped-query attention, einsum's and pad's errors."""
import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from helpers import T, close


def test_factories():
    np.testing.assert_array_equal(tga.eye(2, 3).numpy(), np.eye(2, 3))
    assert tga.eye(3).dtype == np.float32
    close(tga.linspace(0, 1, 5), np.linspace(0, 1, 5), rtol=1e-7)
    x = tga.full_like(tga.zeros(2, 3, dtype=np.float64), 7)
    assert x.dtype == np.float64 and x.shape == (2, 3) and float(x.sum().item()) == 42
    a, b = tga.Tensor([1.0, 2.0], requires_grad=True), tga.Tensor([3.0, 4.0, 5.0], requires_grad=True)
    ga, gb = tga.meshgrid(a, b)
    ref_a, ref_b = np.meshgrid([1.0, 2.0], [3.0, 4.0, 5.0], indexing="ij")
    np.testing.assert_array_equal(ga.numpy(), ref_a)
    np.testing.assert_array_equal(gb.numpy(), ref_b)
    xa, xb = tga.meshgrid(a, b, indexing="xy")
    assert xa.shape == (3, 2) and xb.shape == (3, 2)
    (ga * gb).sum().backward()
    close(a.grad, [12.0, 12.0])
    close(b.grad, [3.0, 3.0, 3.0])


def test_floor_division_and_remainder_follow_python():
    a, b = tga.Tensor([7, -7, 7, -7]), tga.Tensor([2, 2, -2, -2])
    np.testing.assert_array_equal((a // b).numpy(), [3, -4, -4, 3])
    np.testing.assert_array_equal((a % b).numpy(), [1, 1, -1, -1])
    np.testing.assert_array_equal(F.fmod(a, b).numpy(), [1, -1, 1, -1])
    assert (a // b).dtype == np.int64
    x = tga.Tensor([7.5, -7.5])
    np.testing.assert_array_equal((x % 2).numpy(), [1.5, 0.5])
    np.testing.assert_array_equal(F.div(x, 2, rounding_mode="trunc").numpy(), [3.0, -3.0])
    np.testing.assert_array_equal(F.div(x, 2, rounding_mode="floor").numpy(), [3.0, -4.0])
    np.testing.assert_array_equal(F.div(a, b, rounding_mode="trunc").numpy(), [3, -3, -3, 3])
    with pytest.raises(ValueError, match="rounding_mode"):
        F.div(x, 2, rounding_mode="up")


@pytest.mark.parametrize("fn", [F.floor, F.ceil, F.round, F.trunc, F.sign])
def test_piecewise_constant_functions_have_zero_gradient(fn):
    x = T([-1.5, -0.5, 0.0, 0.5, 2.0], "cpu")
    fn(x).sum().backward()
    close(x.grad, np.zeros(5))
    np.testing.assert_array_equal(fn(tga.Tensor([1, -2])).numpy(), np.sign([1, -2]) if fn is F.sign else [1, -2])


def test_logaddexp_and_isfinite_edges():
    a = tga.Tensor([-np.inf, 1000.0, 0.0])
    b = tga.Tensor([0.0, 1000.0, -np.inf])
    np.testing.assert_allclose(F.logaddexp(a, b).numpy(), [0.0, 1000 + np.log(2), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(F.isfinite(a).numpy(), [False, True, True])
    np.testing.assert_array_equal(F.isnan(tga.Tensor([np.nan, 1.0])).numpy(), [True, False])


def test_binary_cross_entropy_with_logits_is_finite_for_large_logits():
    x = tga.Tensor([1e4, -1e4, 1e4, -1e4], requires_grad=True)
    y = tga.Tensor([1.0, 0.0, 0.0, 1.0])
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0, 0.0, 1e4, 1e4])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 1.0, -1.0])
    p = tga.Tensor([0.0, 1.0])  # log(0) clamps at -100, as PyTorch
    np.testing.assert_allclose(F.binary_cross_entropy(p, tga.Tensor([1.0, 0.0]), reduction="none").numpy(), [100, 100])
    pw = F.binary_cross_entropy_with_logits(tga.Tensor([0.3]), tga.Tensor([1.0]), pos_weight=3.0)
    np.testing.assert_allclose(pw.item(), 3 * np.log1p(np.exp(-0.3)), rtol=1e-6)


def test_soft_cross_entropy_with_one_hot_targets_equals_the_integer_form():
    logits = tga.randn(4, 5)
    ids = np.array([0, 3, 4, 1])
    soft = F.cross_entropy(logits, tga.Tensor(np.eye(5, dtype=np.float32)[ids]), label_smoothing=0.1)
    hard = F.cross_entropy(logits, ids, label_smoothing=0.1)
    np.testing.assert_allclose(soft.item(), hard.item(), rtol=1e-6)
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(logits, -1), ids).item(), F.cross_entropy(logits, ids).item(),
                               rtol=1e-6)


def test_scatter_refuses_repeated_targets_and_checks_the_range():
    x = tga.zeros(3, 2)
    with pytest.raises(ValueError, match="scatter.*repeats"):
        F.scatter(x, 0, np.array([[0, 1], [0, 2]]), tga.ones(2, 2))
    with pytest.raises(IndexError, match="scatter_add"):
        F.scatter_add(x, 0, np.array([[3, 0]]), tga.ones(1, 2))
    np.testing.assert_array_equal(F.scatter(x, 1, np.array([[1], [0], [1]]), 5.0).numpy(), [[0, 5], [5, 0], [0, 5]])


def test_topk_gradient_reaches_only_the_selected_entries():
    x = T([[0.1, 0.9, 0.5, 0.7]], "cpu")
    values, idx = F.topk(x, 2)
    np.testing.assert_array_equal(idx.numpy(), [[1, 3]])
    values.sum().backward()
    close(x.grad, [[0.0, 1.0, 0.0, 1.0]])
    values, idx = F.sort(T([3.0, 1.0, 2.0], "cpu"), descending=True)
    np.testing.assert_array_equal(idx.numpy(), [0, 2, 1])


def test_nonzero_and_one_hot():
    x = tga.Tensor([[0.0, 2.0], [3.0, 0.0]])
    np.testing.assert_array_equal(F.nonzero(x).numpy(), [[0, 1], [1, 0]])
    rows, cols = F.nonzero(x, as_tuple=True)
    np.testing.assert_array_equal(rows.numpy(), [0, 1])
    np.testing.assert_array_equal(F.one_hot(tga.Tensor([2, 0]), 3).numpy(), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(IndexError, match="one_hot"):
        F.one_hot(tga.Tensor([3]), 3)


def test_grouped_query_attention_matches_repeated_heads_and_checks_shapes():
    q, k, v = tga.randn(2, 6, 4, 8), tga.randn(2, 2, 4, 8), tga.randn(2, 2, 4, 8)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    ref = F.scaled_dot_product_attention(q, F.repeat_interleave(k, 3, 1), F.repeat_interleave(v, 3, 1), is_causal=True)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)
    with pytest.raises(tga.ShapeError, match="enable_gqa"):
        F.scaled_dot_product_attention(q, tga.randn(2, 4, 4, 8), tga.randn(2, 4, 4, 8), enable_gqa=True)


def test_einsum_and_pad_errors_name_the_op():
    a = tga.randn(2, 3)
    with pytest.raises(tga.ShapeError, match="einsum.*'j'"):
        F.einsum("ij,jk->ik", a, tga.randn(4, 5))
    with pytest.raises(ValueError, match="einsum.*ellipses"):
        F.einsum("...ij->...ji", a)
    np.testing.assert_allclose(F.einsum("ij->ji", a).numpy(), a.numpy().T)
    with pytest.raises(tga.ShapeError, match=r"pad: widths \(1, -4\) crop more than axis 1 of shape \(2, 3\)"):
        F.pad(a, (1, -4))
    with pytest.raises(tga.ShapeError, match="tril"):
        F.tril(tga.randn(3))


def test_prod_and_cumprod_gradients_are_exact_at_zeros():
    from tinygrad_attn.testing import gradcheck, gradgradcheck
    for values, expected in (([2.0, 0.0, 3.0], [0.0, 6.0, 0.0]), ([0.0, 0.0, 3.0], [0.0, 0.0, 0.0])):
        x = T(values, "cpu")
        F.prod(x).backward()
        close(x.grad, expected)
    x = T([2.0, 0.0, 3.0], "cpu")
    F.cumprod(x, 0).sum().backward()
    close(x.grad, [1.0, 8.0, 0.0])  # d/dx of x0 + x0 x1 + x0 x1 x2 at (2, 0, 3)
    m = T([[0.5, 0.0, -1.5], [2.0, 1.0, 0.0]], "cpu")
    assert gradcheck(lambda t: F.cumprod(t, 1), m) and gradgradcheck(lambda t: F.cumprod(t, 1), m)
    assert gradcheck(lambda t: F.prod(t, 0), m)


def test_normalize_of_a_zero_vector_has_a_finite_gradient():
    x = T([[0.0, 0.0], [3.0, 4.0]], "cpu")
    y = F.normalize(x, axis=1)
    close(y, [[0.0, 0.0], [0.6, 0.8]])
    y.sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
