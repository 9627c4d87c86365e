"""The order-fixed scatter-add behind embedding and index gradients on the GPU.

Atomic adds on a GPU sum repeated ids in whatever order the threads arrive, so two
identical steps can differ in the last bit. The CuPy backend instead sorts the ids
(array_kernels.sorted_runs, stable) and sums each run of equal ids first to last
(cupy_kernels' segment_sum_rows, one writer per target element). On the CPU this file
checks the sort and the runs, and runs the CuPy backend's scatter_add on NumPy arrays with
the kernel emulated line for line: np.add.at's arithmetic exactly (float64, repeated ids,
ids in any order, negative ids, rows-and-columns indices). The "cuda" tests run the kernel
itself against np.add.at, twice.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_attn as tga
from tinygrad_attn.backend.array_kernels import sorted_runs
from tinygrad_attn.backend.cupy_backend import CupyBackend  # imports without CuPy: CuPy loads on construction


# ---------------------------------------------------------------- the CuPy backend's glue, on NumPy

def _segment_sum_rows(grid, block, args):
    """segment_sum_rows as the CUDA source writes it (one block per sorted position), on NumPy."""
    sorted_ids, order, heads, values, target, n, D, rows = args
    assert values.shape == (n, D) and target.shape == (rows, D) and grid == (n,)
    for i in range(int(n)):
        if not heads[i] or not 0 <= sorted_ids[i] < rows:
            continue
        acc, r = np.zeros(int(D), dtype=values.dtype), i
        while r < n and (r == i or not heads[r]):
            acc = acc + values[order[r]]
            r += 1
        target[sorted_ids[i]] = target[sorted_ids[i]] + acc


class _NumpyStandInForCupy:
    """What CupyBackend.scatter_add needs of itself, on NumPy, with the kernel emulated."""

    def __init__(self):
        from tinygrad_attn.backend.cupy_kernels import CupyFused
        self.xp = np
        self.cuda_kernels = CupyFused(np)
        self.cuda_kernels._kernel = lambda dtype, name: _segment_sum_rows


id_lists = st.lists(st.integers(0, 6), min_size=1, max_size=40)


@given(ids=id_lists, seed=st.integers(0, 2**16))
def test_summing_the_sorted_runs_is_np_add_at_exactly(ids, seed):
    ids = np.array(ids, dtype=np.int64)
    values = np.random.default_rng(seed).standard_normal((ids.size, 3)) * 10.0 ** np.arange(-3, 3, 2)
    want = np.zeros((7, 3))
    np.add.at(want, ids, values)
    got = np.zeros((7, 3))
    CupyBackend.scatter_add(_NumpyStandInForCupy(), got, (ids,), values)  # sorted runs, the kernel emulated
    np.testing.assert_array_equal(got, want)  # the same sums in the same order: the same bits


@given(ids=id_lists)
def test_runs_are_stable_and_their_heads_mark_each_new_id(ids):
    ids = np.array(ids, dtype=np.int64)
    order, sorted_ids, heads = sorted_runs(np, ids)
    np.testing.assert_array_equal(sorted_ids, np.sort(ids))
    np.testing.assert_array_equal(order, np.argsort(ids, kind="stable"))  # equal ids keep their order
    assert heads[0] and heads.sum() == np.unique(ids).size
    np.testing.assert_array_equal(sorted_ids[heads], np.unique(ids))


INDEX_KINDS = ["one array", "tuple of one", "rows and columns", "negative ids"]


def _case(index_kind, rng):
    ids = rng.integers(0, 50, (4, 32))
    ids[:, :8] = 3  # a heavily repeated id (padding)
    values = rng.standard_normal((4, 32, 5)) * 10.0 ** rng.integers(-4, 4, (4, 32, 1))
    target_shape, index = (50, 5), ids
    if index_kind == "tuple of one":
        index = (ids,)
    elif index_kind == "rows and columns":
        target_shape, values = (10, 5), values[..., 0]
        index = (ids % 10, ids % 5)
    elif index_kind == "negative ids":
        index = np.where(ids % 2 == 0, ids - 50, ids)  # -50 + k is row k: one run with the positives
    return target_shape, index, values


@pytest.mark.parametrize("index_kind", INDEX_KINDS)
def test_the_cupy_backends_scatter_add_glue_gives_np_add_at_exactly(index_kind):
    target_shape, index, values = _case(index_kind, np.random.default_rng(0))
    want = np.zeros(target_shape)
    np.add.at(want, index, values)
    got = np.zeros(target_shape)
    CupyBackend.scatter_add(_NumpyStandInForCupy(), got, index, values)
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- the kernel, on a GPU

def _gpu():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return None
    return tga.get_backend("cuda") if tga.cuda_is_available() else None


cuda = pytest.mark.skipif(_gpu() is None, reason="needs CuPy and a CUDA GPU")


@cuda
@pytest.mark.parametrize("index_kind", INDEX_KINDS)
def test_cuda_scatter_add_equals_np_add_at_bit_for_bit_and_repeats(index_kind):
    b = _gpu()
    target_shape, index, values = _case(index_kind, np.random.default_rng(0))
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
