"""The order-fixed scatter-add behind embedding and index gradients on the GPU.

Atomic adds on a GPU sum repeated ids in whatever order the threads arrive, so two
identical steps can differ in the last bit. The CuPy backend instead sorts the ids
(array_kernels.sorted_runs, stable) and sums each run of equal ids first to last
(cupy_kernels' segment_sum_rows, one writer per target element). On the CPU this file
checks the sort and the runs, and that summing the runs in that order is np.add.at's
arithmetic exactly (float64, repeated ids, ids in any order); the "cuda" tests run the
kernel itself against np.add.at.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_attn as tga
from tinygrad_attn.backend.array_kernels import sorted_runs


def _run_sums_like_the_kernel(target, ids, values):
    """segment_sum_rows, step by step: each run's rows summed first to last, then added once."""
    order, sorted_ids, heads = sorted_runs(np, ids)
    out = target.copy()
    for i in np.flatnonzero(heads):
        acc = np.zeros(values.shape[1:], dtype=values.dtype)
        r = i
        while r < ids.size and (r == i or not heads[r]):
            acc = acc + values[order[r]]
            r += 1
        out[sorted_ids[i]] = out[sorted_ids[i]] + acc
    return out


id_lists = st.lists(st.integers(0, 6), min_size=1, max_size=40)


@given(ids=id_lists, seed=st.integers(0, 2**16))
def test_summing_the_sorted_runs_is_np_add_at_exactly(ids, seed):
    ids = np.array(ids, dtype=np.int64)
    values = np.random.default_rng(seed).standard_normal((ids.size, 3)) * 10.0 ** np.arange(-3, 3, 2)
    want = np.zeros((7, 3))
    np.add.at(want, ids, values)
    got = _run_sums_like_the_kernel(np.zeros((7, 3)), ids, values)
    np.testing.assert_array_equal(got, want)  # the same sums in the same order: the same bits


@given(ids=id_lists)
def test_runs_are_stable_and_their_heads_mark_each_new_id(ids):
    ids = np.array(ids, dtype=np.int64)
    order, sorted_ids, heads = sorted_runs(np, ids)
    np.testing.assert_array_equal(sorted_ids, np.sort(ids))
    np.testing.assert_array_equal(order, np.argsort(ids, kind="stable"))  # equal ids keep their order
    assert heads[0] and heads.sum() == np.unique(ids).size
    np.testing.assert_array_equal(sorted_ids[heads], np.unique(ids))


# ---------------------------------------------------------------- the kernel, on a GPU

def _gpu():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return None
    return tga.get_backend("cuda") if tga.cuda_is_available() else None


cuda = pytest.mark.skipif(_gpu() is None, reason="needs CuPy and a CUDA GPU")


@cuda
@pytest.mark.parametrize("index_kind", ["one array", "tuple of one", "rows and columns", "negative ids"])
def test_cuda_scatter_add_equals_np_add_at_bit_for_bit_and_repeats(index_kind):
    b = _gpu()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (8, 64))
    ids[:, :16] = 3  # a heavily repeated id (padding)
    values = rng.standard_normal((8, 64, 5)) * 10.0 ** rng.integers(-4, 4, (8, 64, 1))
    target_shape, index = (50, 5), ids
    if index_kind == "tuple of one":
        index = (ids,)
    elif index_kind == "rows and columns":
        target_shape, values = (10, 5), values[..., 0]
        index = (ids % 10, ids % 5)
    elif index_kind == "negative ids":
        index = np.where(ids % 2 == 0, ids - 50, ids)  # -50 + k is row k: one run with the positives
    want = np.zeros(target_shape)
    np.add.at(want, index, values)
    dev_index = tuple(b.asarray(i) for i in index) if isinstance(index, tuple) else b.asarray(index)
    results = []
    for _ in range(2):
        out = b.xp.zeros(target_shape, dtype=np.float64)
        b.scatter_add(out, dev_index, b.asarray(values))
        results.append(b.to_host(out))
    np.testing.assert_array_equal(results[0], want)
    np.testing.assert_array_equal(results[1], results[0])


@cuda
def test_cuda_embedding_gradient_is_bit_identical_between_two_steps():
    b = _gpu()
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, (16, 128))
    weight = tga.tensor(rng.standard_normal((30, 64)).astype(np.float32), requires_grad=True, device="cuda")
    cot = tga.tensor(rng.standard_normal((16, 128, 64)).astype(np.float32), device="cuda")
    grads = []
    for _ in range(3):
        weight.grad = None
        (tga.F.embedding(ids, weight) * cot).sum().backward()
        grads.append(weight.grad.numpy())
    for g in grads[1:]:
        np.testing.assert_array_equal(g, grads[0])
    assert b is not None
