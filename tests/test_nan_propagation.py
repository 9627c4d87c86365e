"""A NaN in, a NaN out: the named kernels propagate NaN on every device as NumPy does.

A max written `v > m ? v : m`, or CUDA's fmaxf, drops a NaN; a softmax built on it then
returns a clean-looking distribution that silently ignores the NaN entry, and a training
run's non-finite guard never fires. The CPU runs the array kernels (what the CuPy backend
also runs where it has no CUDA kernel); the "cuda" cases run the CUDA kernels. A source
check keeps NaN-dropping max patterns out of cupy_kernels.py, where no GPU is at hand.
"""
import re

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn.backend import cupy_kernels


def host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


ROWS = np.array([[0.0, np.nan, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]], dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_and_softmax_make_a_nan_row_all_nan(device, dtype):
    b = tga.get_backend(device)
    x = b.asarray(ROWS.astype(dtype))
    clean = ROWS[1].astype(np.float64)
    for got, want in ((host(b.log_softmax(x, -1)), clean - np.log(np.exp(clean).sum())),
                      (host(b.softmax(x, -1, None)), np.exp(clean) / np.exp(clean).sum())):
        assert np.isnan(got[0]).all(), got
        np.testing.assert_allclose(got[1], want, rtol=1e-6)


def test_a_masked_out_nan_is_ignored_and_a_kept_one_is_not(device):
    b = tga.get_backend(device)
    x = b.asarray(ROWS)
    hides_nan = b.asarray(np.array([[True, False, True, True], [False, False, False, False]]))
    p = host(b.softmax(x, -1, hides_nan))
    np.testing.assert_allclose(p[0], [np.exp(0) / np.exp([0, 1, 2]).sum(), 0, *(np.exp([1, 2]) / np.exp([0, 1, 2]).sum())],
                               rtol=1e-6)
    np.testing.assert_array_equal(p[1], 0)  # nothing kept: zeros, not NaN
    keeps_nan = b.asarray(np.array([[True, True, False, True], [True] * 4]))
    assert np.isnan(host(b.softmax(x, -1, keeps_nan))[0]).all()


def test_cross_entropy_of_a_nan_row_is_nan_and_its_neighbours_are_not(device):
    b = tga.get_backend(device)
    loss, saved = b.cross_entropy(b.asarray(ROWS), b.asarray(np.array([0, 3])), -100, 0.0)
    loss = host(loss)
    assert np.isnan(loss[0])
    clean = ROWS[1].astype(np.float64)
    np.testing.assert_allclose(loss[1], np.log(np.exp(clean).sum()) - clean[3], rtol=1e-6)
    dx = host(b.cross_entropy_backward(b.asarray(ROWS), b.asarray(np.array([0, 3])), saved, 1.0, -100, 0.0))
    assert np.isnan(dx[0]).all() and np.isfinite(dx[1]).all()


def test_layer_norm_and_gelu_carry_nan_through(device):
    b = tga.get_backend(device)
    x = b.asarray(ROWS)
    y, _ = b.layer_norm(x, b.asarray(np.ones(4, np.float32)), b.asarray(np.zeros(4, np.float32)), 1e-5)
    y = host(y)
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
    g, _ = b.gelu_tanh(x)
    g = host(g)
    assert np.isnan(g[0, 1]) and np.isfinite(np.delete(g.ravel(), 1)).all()


def test_the_cuda_kernel_sources_have_no_max_that_drops_nan():
    """fmaxf/fminf skip NaN, and `a > b ? a : b` keeps b when a is NaN: every max goes through
    nan_max, which keeps a NaN from either side."""
    source = re.sub(r"//[^\n]*|/\*.*?\*/", "", cupy_kernels._KERNELS, flags=re.S)  # code, not comments
    assert "nan_max" in source
    body = source.replace(source[source.index("__device__ __forceinline__ A nan_max"):].split("\n", 1)[0], "")
    assert not re.search(r"\bf(max|min)f?\s*\(", body), "fmax/fmin drop NaN"
    ternary = re.compile(r"(\w+)\s*[<>]=?\s*(\w+)\s*\?\s*(\w+)\s*:\s*(\w+)")
    for m in ternary.finditer(body):
        a, b, yes, no = m.groups()
        assert {a, b} != {yes, no}, f"a max/min written as a comparison drops NaN: {m.group(0)!r}"


def test_nan_max_as_written_keeps_a_nan_from_either_side():
    """The C expression of nan_max, evaluated with IEEE comparisons (Python floats follow them)."""
    line = next(l for l in cupy_kernels._KERNELS.splitlines() if "A nan_max(" in l)
    expr = re.search(r"return (.*);", line).group(1)  # (a != a || a > b) ? a : b
    cond, yes, no = re.match(r"\((.*)\) \? (\w) : (\w)", expr).groups()
    py = cond.replace("||", "or")

    def nan_max(a, b):
        return {"a": a, "b": b}[yes] if eval(py, {}, {"a": a, "b": b}) else {"a": a, "b": b}[no]

    nan = float("nan")
    assert np.isnan(nan_max(nan, 1.0)) and np.isnan(nan_max(1.0, nan)) and np.isnan(nan_max(nan, nan))
    assert nan_max(1.0, 2.0) == 2.0 and nan_max(2.0, 1.0) == 2.0 and nan_max(-np.inf, 3.0) == 3.0
