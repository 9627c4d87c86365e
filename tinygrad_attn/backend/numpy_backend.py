"""The CPU backend: NumPy arrays."""
import math

import numpy as np

from .host_memory import keep_freed_host_memory


class NumpyBackend:
    device = "cpu"
    xp = np
    fused = None  # NumPy expressions are already the reference path

    def __init__(self):
        keep_freed_host_memory()  # activations are reused every step: see host_memory.py
        self.rng = np.random.default_rng()
        self._erf = np.vectorize(math.erf, otypes=[np.float64])

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def asarray(self, data, dtype=None):
        if hasattr(data, "get") and not isinstance(data, np.ndarray):  # a CuPy array
            data = data.get()
        return np.asarray(data, dtype=dtype)

    @staticmethod
    def to_host(array) -> np.ndarray:
        return array

    @staticmethod
    def scatter_add(target, index, values) -> None:
        """target[index] += values, repeated indices accumulating."""
        if isinstance(index, tuple) and len(index) == 1:
            index = index[0]
        if (isinstance(index, tuple) and target.flags.c_contiguous
                and all(isinstance(i, np.ndarray) and i.dtype.kind in "iu" for i in index)):
            # several integer arrays (x[rows, cols]) pick rows of the flattened leading axes:
            # the one-array path below then applies
            lead = target.shape[:len(index)]
            picked = [np.where(i < 0, i + n, i) for i, n in zip(np.broadcast_arrays(*index), lead)]
            flat_rows = np.ravel_multi_index(picked, lead)
            NumpyBackend.scatter_add(target.reshape((-1,) + target.shape[len(index):]), flat_rows, values)
            return
        if isinstance(index, np.ndarray) and index.dtype.kind in "iu" and index.size:
            # rows picked by one integer array (embedding gradients): sorting the ids and
            # summing runs with reduceat is ~5x faster than np.add.at
            ids = index.reshape(-1)
            ids = np.where(ids < 0, ids + target.shape[0], ids)  # -1 and n-1 are the same row
            rows = values.reshape((ids.size,) + target.shape[1:])
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            target[sorted_ids[starts]] += np.add.reduceat(rows[order], starts, axis=0)
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


class ReferenceFused:
    """The fused entry points (`backend.fused`) as plain array expressions, for any `xp`.

    This is the readable specification of each CUDA kernel in cupy_kernels.py and what
    the GPU tests compare them with. NumpyBackend.fused stays None: on the CPU the ops'
    own expressions are the path, and tests install this object to exercise the ops'
    fused branch without a GPU. Half types compute in float32, as the kernels do.
    """

    def __init__(self, xp=np):
        self.xp = xp

    def supports(self, *arrays) -> bool:
        dtype = arrays[0].dtype
        return all(a.dtype == dtype for a in arrays) and np.dtype(dtype).name in (
            "float16", "bfloat16", "float32", "float64")

    @staticmethod
    def acc_dtype(dtype):
        return np.float64 if np.dtype(dtype) == np.float64 else np.float32

    def _up(self, a):
        return a.astype(self.acc_dtype(a.dtype), copy=False)

    def softmax(self, x, mask=None):
        xp = self.xp
        a = self._up(x)
        if mask is not None:
            a = xp.where(mask, a, -xp.inf)
        m = xp.max(a, axis=-1, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        e = xp.exp(a - m)
        s = xp.sum(e, axis=-1, keepdims=True)
        return (e / xp.where(s > 0, s, 1)).astype(x.dtype)

    def softmax_backward(self, y, g):
        yy, gg = self._up(y), self._up(g)
        return (yy * (gg - (gg * yy).sum(axis=-1, keepdims=True))).astype(y.dtype)

    def log_softmax(self, x):
        xp = self.xp
        shifted = self._up(x)
        shifted = shifted - xp.max(shifted, axis=-1, keepdims=True)
        return (shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))).astype(x.dtype)

    def log_softmax_backward(self, y, g):
        gg = self._up(g)
        return (gg - self.xp.exp(self._up(y)) * gg.sum(axis=-1, keepdims=True)).astype(y.dtype)

    def cross_entropy(self, logits, targets, ignore_index, label_smoothing=0.0):
        """(per-position loss, stats): stats[..., 0] is the row max m and stats[..., 1] the
        log-sum-exp of the row minus m; the loss is computed on x - m (exact near the max)."""
        xp = self.xp
        a = self._up(logits)
        valid = targets != ignore_index
        safe = xp.where(valid, targets, 0)
        m = xp.max(a, axis=-1, keepdims=True)
        shifted = a - m
        log_s = xp.log(xp.sum(xp.exp(shifted), axis=-1))
        loss = log_s - xp.take_along_axis(shifted, safe[..., None], axis=-1)[..., 0]
        if label_smoothing:
            loss = (1 - label_smoothing) * loss + label_smoothing * (log_s - xp.mean(shifted, axis=-1))
        return xp.where(valid, loss, 0).astype(a.dtype), xp.stack([m[..., 0], log_s], axis=-1)

    def cross_entropy_backward(self, logits, targets, stats, grad_scale, ignore_index, label_smoothing=0.0):
        """d/dlogits of sum(loss * grad_scale) (grad_scale: a scalar or one value per position)."""
        xp = self.xp
        a = self._up(logits)
        C = a.shape[-1]
        valid = targets != ignore_index
        target = (xp.arange(C) == xp.where(valid, targets, 0)[..., None]).astype(a.dtype)
        target = (1 - label_smoothing) * target + label_smoothing / C
        scale = xp.where(valid, xp.asarray(grad_scale).astype(a.dtype), 0)[..., None]
        probs = xp.exp((a - stats[..., :1]) - stats[..., 1:])
        return (scale * (probs - target)).astype(logits.dtype)

    def layer_norm(self, x, weight, bias, eps):
        """(y, mean, rstd): mean and rstd per row, in the accumulator dtype."""
        xp = self.xp
        a = self._up(x)
        mean = a.mean(axis=-1)
        centered = a - mean[..., None]
        rstd = 1 / xp.sqrt((centered * centered).mean(axis=-1) + eps)
        y = centered * rstd[..., None] * self._up(weight) + self._up(bias)
        return y.astype(x.dtype), mean, rstd

    def layer_norm_backward(self, x, weight, g, mean, rstd, need_dx=True, need_dweight=True, need_dbias=True):
        a, gg = self._up(x), self._up(g)
        xhat = (a - mean[..., None]) * rstd[..., None]
        lead = tuple(range(a.ndim - 1))
        dx = dw = db = None
        if need_dx:
            gh = gg * self._up(weight)
            dx = (rstd[..., None] * (gh - gh.mean(axis=-1, keepdims=True)
                                     - xhat * (gh * xhat).mean(axis=-1, keepdims=True))).astype(x.dtype)
        if need_dweight:
            dw = (gg * xhat).sum(axis=lead).astype(weight.dtype)
        if need_dbias:
            db = gg.sum(axis=lead).astype(weight.dtype)
        return dx, dw, db

    def gelu(self, x):
        a = self._up(x)
        return (0.5 * a * (1 + self.xp.tanh(_GELU_K0 * (a + _GELU_K1 * a ** 3)))).astype(x.dtype)

    def gelu_backward(self, x, g):
        a = self._up(x)
        t = self.xp.tanh(_GELU_K0 * (a + _GELU_K1 * a ** 3))
        d = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * _GELU_K0 * (1 + 3 * _GELU_K1 * a * a)
        return (self._up(g) * d).astype(x.dtype)


_GELU_K0 = math.sqrt(2.0 / math.pi)
_GELU_K1 = 0.044715
