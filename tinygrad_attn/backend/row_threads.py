"""Running a kernel on slices of its leading axis in several threads at once.

NumPy runs every ufunc loop on one core (only BLAS is threaded) and releases the GIL
inside it, so two threads working on two halves of the rows use two cores. The CPU
backend uses this for the kernels whose rows are independent: the attention core (per
batch item), GELU and LayerNorm (per row). A kernel is split only when each thread gets
enough rows to be worth a hand-off (a few hundred microseconds of work).

Splitting is switched on by `tinygrad_attn.set_num_threads(n)`, which also holds BLAS
to one thread for the process (threadpoolctl), as `torch.set_num_threads` does for its
own pools: the matrix products are then split here too. Two reasons. The attention
core's products are small (T x T x head_dim), where BLAS's threads cost more than they
give: attention forward and backward of one layer (B=32, H=4, T=128, dh=32) took 50-60 ms
with BLAS's two threads, 25 ms split in two with one BLAS thread each. And OpenBLAS's
threads spin for ~0.1 s after each threaded call, on the very core the split kernels
want: with them running, splitting made a training step slower, not faster.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


def default_threads() -> int:
    """OMP_NUM_THREADS (what BLAS uses too) if set, else the cores this process may use."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class RowThreads:
    def __init__(self, threads: int = 1):
        self.threads = max(1, int(threads))
        self._pool = None

    def slices(self, n: int, min_rows: int):
        """[0, n) cut into one slice per thread, or None when one thread should do it all."""
        k = min(self.threads, n // max(min_rows, 1))
        if k <= 1:
            return None
        bounds = [n * i // k for i in range(k + 1)]
        return [slice(a, b) for a, b in zip(bounds, bounds[1:])]

    def map(self, fn, slices):
        """[fn(s) for s in slices], the first on this thread and the others in the pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="tinygrad_attn")
        futures = [self._pool.submit(fn, s) for s in slices[1:]]
        try:
            first = fn(slices[0])
        finally:
            rest = [f.result() for f in futures]  # wait for all, even when this thread's part failed
        return [first] + rest
