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

The same row-independent kernels are also cut into blocks of about 128K entries (512 KB
of float32; a core's L2 here is 2 MB) and each thread runs its run of blocks: each kernel
is a chain of NumPy passes (GELU's backward makes eight), and run over a whole (B, T, 4d)
activation every pass streams it from memory again, while block by block the passes after
the first hit the cache. On 2 threads (best of 11): GELU forward+backward of (32, 128, 512)
float32 24.6 -> 20.3 ms, attention of one layer (B=32, H=4, T=128, dh=32) 26.5 -> 20.0 ms;
a training step (benchmarks' case B) 0.86x, case A 0.96x, case F 0.91x (paired in one process).
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

    @staticmethod
    def blocks(n: int, rows_per_block: int):
        """[0, n) cut into blocks of about `rows_per_block` rows, or None when one block holds them all."""
        k = min(n, round(n / max(rows_per_block, 1)))
        if k <= 1:
            return None
        bounds = [n * i // k for i in range(k + 1)]
        return [slice(a, b) for a, b in zip(bounds, bounds[1:])]

    def map(self, fn, slices):
        """[fn(s) for s in slices]: the slices dealt out in runs, one run per thread (this thread
        takes the first), each run in order."""
        k = min(self.threads, len(slices))
        if k <= 1:
            return [fn(s) for s in slices]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="tinygrad_attn")
        bounds = [len(slices) * i // k for i in range(k + 1)]
        runs = [slices[a:b] for a, b in zip(bounds, bounds[1:])]
        futures = [self._pool.submit(lambda run: [fn(s) for s in run], run) for run in runs[1:]]
        try:
            first = [fn(s) for s in runs[0]]
        finally:
            rest = [f.result() for f in futures]  # wait for all, even when this thread's part failed
        return first + [r for run in rest for r in run]
