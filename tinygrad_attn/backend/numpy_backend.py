"""The CPU backend: NumPy arrays."""
import math

import numpy as np


class NumpyBackend:
    device = "cpu"
    xp = np
    fused = None  # NumPy expressions are already the reference path

    def __init__(self):
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
