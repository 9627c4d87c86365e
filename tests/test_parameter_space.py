"""Ops away from their defaults: keywords other than the default value, inputs with ties, rows
of very different magnitude, and einsum outputs that are not a swap.

References are written here in NumPy (float64) from the ops' definitions; gradients are
checked against central differences (tinygrad_attn.testing.gradcheck).
"""
import itertools

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn.testing import gradcheck
from helpers import T, close


# ---------------------------------------------------------------- logcumsumexp: each line's own shift

MIXED_ROWS = np.array([[1000.0, 1001.0, 999.5, 1000.25],
                       [-1000.0, -999.0, -1001.0, -998.5],
                       [0.5, -0.25, 1.0, 0.0]])


@pytest.mark.parametrize("axis", [1, 0])
def test_logcumsumexp_of_lines_of_very_different_magnitude_is_finite_and_exact(device, axis):
    x = MIXED_ROWS if axis == 1 else MIXED_ROWS.T.copy()
    t = T(x, device)
    out = F.logcumsumexp(t, axis)
    close(out, np.logaddexp.accumulate(x, axis), rtol=1e-12, atol=1e-9)
    out.sum().backward()
    # d/dx_j sum_i logcumsumexp_i = sum over i >= j of softmax(x_0..x_i)_j, each line on its own
    lines = np.moveaxis(x, axis, -1)
    expected = np.zeros_like(lines)
    for r, line in enumerate(lines):
        for i in range(line.size):
            w = np.exp(line[:i + 1] - line[:i + 1].max())
            expected[r, :i + 1] += w / w.sum()
    close(t.grad, np.moveaxis(expected, -1, axis), rtol=1e-10, atol=1e-12)


def test_logcumsumexp_gradient_on_lines_of_very_different_magnitude(device):
    assert gradcheck(lambda t: F.logcumsumexp(t, 1), T(MIXED_ROWS, device))


# ---------------------------------------------------------------- smooth_l1 / huber: beta and delta

def np_smooth_l1(d, beta):
    a = np.abs(d)
    return a if beta == 0 else np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)


DIFFS = np.array([-3.0, -1.2, -0.3, -0.05, 0.0, 0.1, 0.45, 0.8, 1.7, 4.0])   # both sides of each beta


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0, 2.5])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_smooth_l1_follows_beta_in_both_branches(device, beta, reduction):
    target = np.linspace(-1, 1, DIFFS.size)
    out = F.smooth_l1_loss(T(target + DIFFS, device), T(target, device, grad=False), reduction=reduction, beta=beta)
    per = np_smooth_l1(DIFFS, beta)
    close(out, {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("beta", [0.25, 2.5])
def test_smooth_l1_gradient_is_d_over_beta_inside_and_the_sign_outside(device, beta):
    x = T(DIFFS, device)
    F.smooth_l1_loss(x, T(np.zeros_like(DIFFS), device, grad=False), reduction="sum", beta=beta).backward()
    expected = np.where(np.abs(DIFFS) < beta, DIFFS / beta, np.sign(DIFFS))
    close(x.grad, expected)


@pytest.mark.parametrize("delta", [0.25, 1.0, 2.5])
def test_huber_follows_delta_in_both_branches(device, delta):
    out = F.huber_loss(T(DIFFS, device), T(np.zeros_like(DIFFS), device, grad=False), reduction="none", delta=delta)
    a = np.abs(DIFFS)
    close(out, np.where(a < delta, 0.5 * DIFFS ** 2, delta * (a - 0.5 * delta)))


# ---------------------------------------------------------------- topk: largest and smallest

@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("axis", [-1, 0])
def test_topk_picks_the_k_largest_or_smallest(device, largest, axis):
    x = np.random.default_rng(3).permutation(24).reshape(4, 6).astype(np.float64) - 11.5
    k = 3
    t = T(x, device)
    values, idx = F.topk(t, k, axis=axis, largest=largest)
    order = np.argsort(-x if largest else x, axis=axis)
    expected_idx = np.take(order, range(k), axis=axis)
    np.testing.assert_array_equal(idx.numpy(), expected_idx)
    close(values, np.take_along_axis(x, expected_idx, axis=axis))
    values.sum().backward()
    chosen = np.zeros_like(x)
    np.put_along_axis(chosen, expected_idx, 1.0, axis=axis)
    close(t.grad, chosen)


# ---------------------------------------------------------------- einsum: every permutation of the output

@pytest.mark.parametrize("output", ["".join(p) for p in itertools.permutations("ijk")])
def test_einsum_output_in_every_order_of_three_indices(device, output):
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7.0
    out = F.einsum(f"ijk->{output}", T(x, device))
    close(out, np.einsum(f"ijk->{output}", x))


@pytest.mark.parametrize("spec", ["ij,jk->ki", "bij,bjk->kbi", "bij,bjk->ibk", "ijk,kl->lij", "ij,kj->jik",
                                  "abcd->dabc", "abcd->cdba"])
def test_einsum_cyclic_and_mixed_output_orders_with_their_gradients(device, spec):
    rng = np.random.default_rng(0)
    sizes = dict(zip("abcdijklm", (2, 3, 4, 5, 2, 3, 4, 5, 3)))
    terms = spec.split("->")[0].split(",")
    arrays = [rng.normal(size=[sizes[c] for c in term]) for term in terms]
    tensors = [T(a, device) for a in arrays]
    close(F.einsum(spec, *tensors), np.einsum(spec, *arrays), rtol=1e-10, atol=1e-12)
    assert gradcheck(lambda *ts: F.einsum(spec, *ts), *tensors)


# ---------------------------------------------------------------- sort / argsort / topk: ties, stable

TIES = np.array([[3.0, 1.0, 3.0, 1.0, 2.0, 3.0],
                 [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                 [2.0, -1.0, 2.0, 5.0, -1.0, 2.0]])
# long enough that an unstable sort (NumPy's quicksort past 16 elements) shows
LONG_TIES = np.random.default_rng(5).permutation(np.repeat(np.arange(4.0), 24)).reshape(2, 48)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("ties", [TIES, LONG_TIES], ids=["short", "long"])
def test_sort_and_argsort_keep_equal_values_in_their_order(device, descending, axis, ties):
    x = ties if axis == 1 else ties.T.copy()
    # the stable order written out: by value, then by position (PyTorch's stable=True)
    key = -x if descending else x
    n = x.shape[axis]
    positions = np.arange(n).reshape((-1, 1) if axis == 0 else (1, -1))
    expected = np.argsort(key * (10 * n) + positions, axis=axis)   # distinct keys: any sort is stable
    np.testing.assert_array_equal(F.argsort(T(x, device), axis, descending=descending).numpy(), expected)
    values, idx = F.sort(T(x, device), axis, descending=descending)
    np.testing.assert_array_equal(idx.numpy(), expected)
    close(values, np.take_along_axis(x, expected, axis=axis))


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int8, np.int64])
def test_descending_sort_of_bool_unsigned_and_the_most_negative_integer(device, dtype):
    raw = {np.bool_: [True, False, True, False, False],
           np.uint8: [0, 255, 1, 0, 255],
           np.int8: [-128, 127, 0, -128, 5],
           np.int64: [np.iinfo(np.int64).min, 3, np.iinfo(np.int64).max, 3, 0]}[dtype]
    x = np.array(raw, dtype=dtype)
    values, idx = F.sort(tga.Tensor(x, device=device), descending=True)
    expected = np.array(sorted(range(x.size), key=lambda i: (-int(x[i]), i)))
    np.testing.assert_array_equal(idx.numpy(), expected)
    np.testing.assert_array_equal(values.numpy(), x[expected])
    top, top_idx = F.topk(tga.Tensor(x, device=device), 2)
    np.testing.assert_array_equal(top_idx.numpy(), expected[:2])


def test_nan_sorts_as_the_largest_value_both_ways(device):
    x = np.array([2.0, np.nan, -1.0, 2.0])
    np.testing.assert_array_equal(F.argsort(T(x, device)).numpy(), [2, 0, 3, 1])
    np.testing.assert_array_equal(F.argsort(T(x, device), descending=True).numpy(), [1, 0, 3, 2])


def test_logcumsumexp_of_float32_values_far_apart_within_a_row_is_exact_and_finite():
    # one shift for the whole row (its max) underflows exp(x - max) to 0 in float32 when a row
    # spans more than ~88: the first entry came out -inf, its gradient NaN
    row = np.array([[0.0017, 174.0, 0.0126, -1.99], [-300.0, 5.0, 300.0, -2.0]], np.float32)
    x = tga.Tensor(row, requires_grad=True)
    y = tga.functional.logcumsumexp(x, axis=1)
    np.testing.assert_allclose(y.numpy(), np.logaddexp.accumulate(row.astype(np.float64), axis=1), rtol=1e-6)
    y.sum().backward()
    expected = np.exp(row.astype(np.float64)[:, :, None] - np.logaddexp.accumulate(row.astype(np.float64), 1)[:, None, :])
    expected = (expected * np.triu(np.ones((4, 4)))[None]).sum(-1)  # dx_j = sum over i >= j of exp(x_j - y_i)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-5, atol=1e-30)
