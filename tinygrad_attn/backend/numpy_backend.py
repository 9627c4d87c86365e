"""The CPU backend: NumPy arrays, the kernels of array_kernels.py run in cache-sized blocks,
and NumPy's fast paths.

The row-independent kernels (attention per batch item, GELU, LayerNorm) run on blocks of
about 128K entries (512 KB of float32; a core's L2 here is 2 MB). Each kernel is a chain of
NumPy passes (GELU's backward makes eight): over a whole (B, T, 4d) activation every pass
streams it from memory again, while block by block the passes after the first hit the
cache. On one core, GELU forward+backward of (4096, 512) float32 took 40 ms whole, 15 ms in
blocks of 256 rows; LayerNorm of (4096, 128) 7.6 -> 5.3 ms.

The matrix products use BLAS's own threads (`set_num_threads`). The blocks go to threads of
ours too (cpu_threads.py) when OpenBLAS's idle threads sleep soon instead of spinning on the
cores ours need (OPENBLAS_THREAD_TIMEOUT). We tried splitting the products over our threads
as well, with BLAS held to one thread: handing work to a sleeping thread took 0.1-0.4 ms
here (1.2 ms at the 90th percentile), dozens of times a step, while OpenBLAS's own hand-off
takes microseconds: steps were 1.3-1.6x slower on a busy host.
"""
import math

import numpy as np

from ..dtypes import is_half
from ..shapes import broadcast_shape
from .array_kernels import SHIFT_FREE_BOUND, ArrayKernels, picked_rows, sorted_runs
from .contract import Backend
from .cpu_threads import (BlockThreads, blas_threads_sleep_soon, default_threads, set_openblas_spin, spin_is_ours,
                          spin_setting)
from .host_memory import keep_freed_host_memory, process_settings_allowed
from .spin_choice import SpinChoice

_BLOCK_ELEMENTS = 1 << 17  # a row-independent kernel runs on blocks of about this many entries
_SHORT_ROW = 32  # rows this short are reduced down the columns of a transposed copy (row_max)


class NumpyBackend(ArrayKernels, Backend):
    device = "cpu"
    xp = np
    collectives = "mpi"

    def __init__(self):
        self.rng = np.random.default_rng()
        self._erf = np.vectorize(math.erf, otypes=[np.float64])
        self.workers = BlockThreads()
        self._threads = default_threads()
        self.spin = None  # the run-time choice of OpenBLAS's spin (spin_choice.py), where it is ours to make
        # speed by default: a user's own script gets what the trainer gets, at the backend's
        # first use (never at import); TINYGRAD_ATTN_PROCESS_SETTINGS=0 opts out of both
        if process_settings_allowed():
            keep_freed_host_memory()
            setting = spin_setting()
            if spin_is_ours():
                set_openblas_spin(short=setting != "long")
                if setting == "auto":
                    self.spin = SpinChoice(self._use_spin)
        self.workers.threads = self._threads if blas_threads_sleep_soon() else 1

    def _use_spin(self, short: bool) -> None:
        set_openblas_spin(short)
        self.workers.threads = self._threads if short else 1

    def on_backward(self) -> None:
        if self.spin is not None:
            self.spin.step()

    def matmul(self, a, b):
        if self.spin is not None and self.spin.on_trial:
            self.spin.product()
        return np.matmul(a, b)

    def set_num_threads(self, n: int | None = None) -> int:
        """Let BLAS (the matrix products) use `n` threads, for the whole process (default:
        OMP_NUM_THREADS, else the cores this process may use), and the row-independent
        kernels as many when BLAS's idle threads sleep soon (cpu_threads.py). Returns n."""
        from threadpoolctl import threadpool_limits
        n = default_threads() if n is None else max(1, int(n))
        threadpool_limits(limits=n, user_api="blas")
        self._threads = n
        self.workers.threads = n if blas_threads_sleep_soon() else 1
        return n

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def asarray(self, data, dtype=None):
        if hasattr(data, "get") and not isinstance(data, np.ndarray):  # a CuPy array
            data = data.get()
        return np.asarray(data, dtype=dtype)

    @staticmethod
    def to_host(array) -> np.ndarray:
        return array

    def synchronize(self) -> None:
        pass  # NumPy computes eagerly

    @staticmethod
    def scatter_add(target, index, values) -> None:
        """target[index] += values, repeated indices accumulating."""
        rows = picked_rows(np, target, index)
        if rows is not None and rows[1].size:
            # rows picked by integer arrays (embedding gradients): sorting the ids and summing
            # runs with reduceat is ~5x faster than np.add.at
            target_rows, ids = rows[0], rows[1].reshape(-1)
            order, sorted_ids, heads = sorted_runs(np, ids)
            starts = np.flatnonzero(heads)
            picked = values.reshape((ids.size,) + target_rows.shape[1:])
            target_rows[sorted_ids[starts]] += np.add.reduceat(picked[order], starts, axis=0)
            return
        np.add.at(target, index, values)

    def erf(self, x):
        # NumPy has no erf; math.erf is exact, vectorized here (slow, but only the exact GELU uses it)
        return self._erf(x).astype(x.dtype, copy=False)

    def random_normal(self, shape, dtype):
        return self.rng.standard_normal(shape, dtype=np.float32 if dtype == np.float32 else np.float64).astype(dtype, copy=False)

    def random_uniform(self, shape, dtype):
        return self.rng.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64).astype(dtype, copy=False)

    def random_integers(self, low, high, shape):
        return self.rng.integers(low, high, size=shape, dtype=np.int64)

    # Sums along rows and down columns. `a.sum(axis=-1)` over short rows (d = 128) goes
    # through NumPy's general reduction machinery, which pays per row; einsum runs one SIMD
    # sum-of-products loop instead: 2-4x faster for the row means and dot products of
    # layer norm, softmax and attention (layer norm forward 0.94 -> 0.59 ms, backward
    # 2.6 -> 1.8 ms at (32, 128, 128) float32). Both accumulate in the array's dtype.
    @staticmethod
    def row_max(a):
        # fmax skips NaN where max propagates it; a row with a NaN is NaN after the exp and
        # sum either way, and fmax's loop over short rows is twice as fast (48 vs 95 us for
        # one batch item's (512, 128) attention scores). NumPy pays per row, so rows of 32 or
        # fewer are transposed first and reduced column by column, one SIMD pass per column:
        # 5.9 against 15.9 us for 256 rows of 32, the same maxima
        if a.ndim >= 2 and 1 < a.shape[-1] <= _SHORT_ROW and a.size >= 2 * _SHORT_ROW:
            columns = np.ascontiguousarray(a.reshape(-1, a.shape[-1]).T)
            return np.fmax.reduce(columns, axis=0).reshape(a.shape[:-1] + (1,))
        return np.fmax.reduce(a, axis=-1, keepdims=True)

    @staticmethod
    def row_sum(a):
        return np.einsum("...i->...", a)[..., None]

    @staticmethod
    def row_dot(a, b):
        return np.einsum("...i,...i->...", a, b)[..., None]

    @staticmethod
    def column_sum(a):
        return np.einsum("ni->i", a)

    @staticmethod
    def column_dot(a, b):
        return np.einsum("ni,ni->i", a, b)

    def _shift_free_rows(self, q, k, mask, scale):
        # Cauchy-Schwarz: |scale q_i . k_j| <= scale |q_i| max_j |k_j|, plus the row's largest
        # finite |mask| (-inf entries give exp = 0 either way). Rows proven within the bound
        # skip the row max and its subtraction, two passes over the (T, T) scores: with the
        # 1/rowsum moved onto the output, a layer's attention forward went 7.6 -> 6.6 ms on one
        # core, 5.6 -> 4.7 ms on two (B32 h4 T128 d32, causal). The bound reads q, k and the mask.
        if q.dtype not in (np.float32, np.float64) or q.size == 0 or k.size == 0:
            return None
        key_norm = np.sqrt(np.max(self.row_dot(k, k), axis=-2, keepdims=True))
        bound = np.sqrt(self.row_dot(q, q)) * (abs(scale) * key_norm)  # k may have batch axes q lacks
        if mask is not None:
            magnitude = np.abs(mask)
            bound = bound + np.max(magnitude, axis=-1, keepdims=True, where=magnitude != np.inf, initial=0.0)
        return bound <= SHIFT_FREE_BOUND  # False for NaN: those rows keep the shifted path, NaN as before

    # ---- the row-independent kernels, in cache-sized blocks -------------------------
    # Each part runs array_kernels.py's kernel on a block of the leading axis and writes its
    # output into one array; what a part saves for backward stays per block, and the
    # backward runs block by block the same way. The blocks may run on several threads.
    def _parts(self, first, part, work_per_row=None, calls_blas=False):
        """_PerBlock of [part(b) for b in blocks] over `first`'s leading axis, or None for one block."""
        n = first.shape[0] if first.ndim else 0
        per_row = work_per_row or max(first.size // max(n, 1), 1)
        blocks = _blocks(n, _BLOCK_ELEMENTS // per_row)
        return None if blocks is None else _PerBlock(blocks, self.workers.map(part, blocks, calls_blas))

    def gelu_tanh(self, x):
        if x.ndim > 2:  # elementwise: blocks of rows of any leading axes
            y, saved = self.gelu_tanh(_rows(x))
            return y.reshape(x.shape), saved
        y = np.empty_like(x)

        def part(sl):
            y[sl], s = super(NumpyBackend, self).gelu_tanh(x[sl])
            return s
        saved = self._parts(x, part)
        return super().gelu_tanh(x) if saved is None else (y, saved)

    def gelu_tanh_backward(self, x, saved, g):
        if x.ndim > 2:  # the forward ran on rows
            return self.gelu_tanh_backward(_rows(x), saved, _rows(g)).reshape(x.shape)
        if not isinstance(saved, _PerBlock):
            return super().gelu_tanh_backward(x, saved, g)
        dx = np.empty_like(x)

        def part(sl, s):
            dx[sl] = super(NumpyBackend, self).gelu_tanh_backward(x[sl], s, g[sl])
        saved.backward(part, self.workers)
        return dx

    def layer_norm(self, x, weight, bias, eps):
        if x.ndim > 2:  # each row normalized on its own: blocks of rows of any leading axes
            y, saved = self.layer_norm(_rows(x), weight, bias, eps)
            return y.reshape(x.shape), saved
        y = np.empty_like(x)

        if is_half(x.dtype):  # computed in float32 (array_kernels.py), then cast
            return super().layer_norm(x, weight, bias, eps)

        def part(sl):
            return self._layer_norm_into(y[sl], x[sl], weight, bias, eps)
        saved = self._parts(x, part)
        return super().layer_norm(x, weight, bias, eps) if saved is None else (y, saved)

    def layer_norm_backward(self, x, weight, g, saved, needs):
        if x.ndim > 2:  # the forward ran on rows
            dx, dw, db = self.layer_norm_backward(_rows(x), weight, _rows(g), saved, needs)
            return (None if dx is None else dx.reshape(x.shape)), dw, db
        if not isinstance(saved, _PerBlock):
            return super().layer_norm_backward(x, weight, g, saved, needs)
        dx = np.empty_like(x) if needs[0] else None

        def part(sl, saved_part):
            _, gw, gb = self._layer_norm_backward_into(None if dx is None else dx[sl], weight, g[sl], saved_part, needs)
            return gw, gb
        parts = saved.backward(part, self.workers)
        dw = sum(p[0] for p in parts) if needs[1] else None  # each block's partial column sums
        db = sum(p[1] for p in parts) if needs[2] else None
        return dx, dw, db

    def attention(self, q, k, v, mask, scale, keep):
        item = _per_item(q, k, v, mask, keep)
        if item is None:
            return super().attention(q, k, v, mask, scale, keep)
        out = np.empty_like(q) if q.shape[-1] == v.shape[-1] else np.empty(q.shape[:-1] + v.shape[-1:], q.dtype)

        free_rows = self._shift_free_rows(q, k, mask, scale)  # for all blocks at once

        def part(sl):
            out[sl], p = self._attention(q[sl], k[sl], v[sl], item(mask, sl), scale, item(keep, sl), item(free_rows, sl))
            return p
        saved = self._parts(q, part, work_per_row=q[0].size // q.shape[-1] * k.shape[-2], calls_blas=True)
        return super().attention(q, k, v, mask, scale, keep) if saved is None else (out, saved)

    def attention_backward(self, q, k, v, saved, keep, g, scale, scores_grad=False):
        if not isinstance(saved, _PerBlock):
            return super().attention_backward(q, k, v, saved, keep, g, scale, scores_grad)
        grads = [np.empty_like(a) for a in (q, k, v)]
        # dS is a temporary of each block; kept whole only when a mask asks for its gradient
        ds = np.empty(q.shape[:-1] + k.shape[-2:-1], q.dtype) if scores_grad else None

        def part(sl, p):
            *pieces, ds_piece = super(NumpyBackend, self).attention_backward(
                q[sl], k[sl], v[sl], p, _item(keep, sl, q.ndim), g[sl], scale)
            for full, piece in zip(grads, pieces):
                full[sl] = piece
            if ds is not None:
                ds[sl] = ds_piece
        saved.backward(part, self.workers, calls_blas=True)
        return (*grads, ds)


def _blocks(n: int, rows_per_block: int):
    """[0, n) cut into blocks of about `rows_per_block` rows, or None when one block holds them all."""
    k = min(n, round(n / max(rows_per_block, 1)))
    if k <= 1:
        return None
    bounds = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


class _PerBlock:
    """What a kernel run in blocks saved: one value per block of the leading axis."""

    def __init__(self, blocks, parts):
        self.blocks, self.parts = blocks, parts

    def backward(self, part, workers, calls_blas=False):
        """[part(block, saved) for each block], on `workers`' threads."""
        return workers.map(lambda pair: part(*pair), list(zip(self.blocks, self.parts)), calls_blas)


def _rows(a):
    """(..., d) -> (rows, d): a view when the layout allows (also when d = 0, unlike reshape(-1, d))."""
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def _item(a, sl, ndim):
    """Batch items `sl` of a mask or dropout array that has the batch axis, else the array as it is."""
    return a[sl] if a is not None and a.ndim == ndim and a.shape[0] != 1 else a


def _per_item(q, k, v, mask, keep):
    """A slicer for the attention's masks when q, k and v share their leading (batch) axis, else None."""
    n, ndim = q.shape[0], q.ndim
    if ndim < 3 or k.ndim != ndim or v.ndim != ndim or k.shape[0] != n or v.shape[0] != n:
        return None
    batch = broadcast_shape(*(a.shape[:-2] for a in (q, k, v, mask, keep) if a is not None and a.ndim >= 2))
    if batch != q.shape[:-2]:
        return None  # k, v or a mask with batch axes q lacks: the output is larger than q
    return lambda a, sl: _item(a, sl, ndim)
