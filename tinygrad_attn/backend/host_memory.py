"""Keep freed host memory for reuse instead of handing it back to the OS (glibc only).

A training step allocates and frees the same large activation arrays every step. By
default glibc's malloc serves large blocks with fresh `mmap` calls and gives freed
memory at the top of the heap back to the OS, so every step page-faults its
activations in again, and the kernel zeroes each 4 KiB page first. On the benchmark
decoder (benchmarks/bench_cpu.py, case A) that was a third of the step: 480 ms ->
310 ms with the settings below. PyTorch CPU users get the same effect by preloading
jemalloc or tcmalloc; we ask glibc for it directly with `mallopt`: large blocks come
from the heap too, and the heap is not trimmed, so the process keeps the memory of
its peak step for the next one, as a caching allocator does; and all threads share one
arena, so that memory kept by one thread is there for the others. Peak memory is unchanged
(the peak step needed it anyway); memory is only returned when the process ends.

It changes the allocator of the whole process, so it is never a side effect of
`import`: the CPU backend applies it at its first use (the first CPU tensor), so that a
user's own script is as fast as the trainer. TINYGRAD_ATTN_PROCESS_SETTINGS=0 opts out of
every process-wide setting (this one and OpenBLAS's spin, cpu_threads.py);
TINYGRAD_ATTN_KEEP_HOST_MEMORY=0 of this one alone. Elsewhere than glibc (macOS, musl) it
does nothing.
"""
from __future__ import annotations

import ctypes
import os

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # the largest int mallopt takes: keep up to 2 GiB of free heap top

ENV_VAR = "TINYGRAD_ATTN_KEEP_HOST_MEMORY"
SETTINGS_ENV_VAR = "TINYGRAD_ATTN_PROCESS_SETTINGS"  # =0: the backend changes no process-wide setting
_applied: bool | None = None


def process_settings_allowed() -> bool:
    return os.environ.get(SETTINGS_ENV_VAR, "1") != "0"


def keep_freed_host_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True if the settings are in effect.

    Idempotent; the first call decides. False when opted out or not on glibc.
    """
    global _applied
    if _applied is None:
        _applied = (os.environ.get(ENV_VAR, "1") != "0" and process_settings_allowed()
                    and _set_glibc_malloc_options())
    return _applied


def _set_glibc_malloc_options() -> bool:
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (present only in glibc)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; both settings or neither would be the clean outcome,
    # but a half-applied setting is harmless (each alone still saves some faults)
    no_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    no_trim = mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
    # one arena for every thread: what a block thread freed is reused by the caller when the blocks
    # move back to one thread (the long spin, spin_choice.py). With an arena per thread the kept
    # memory of both stayed: the masked LM's peak was 356 against 314 MB here, at the same step time
    mallopt(_M_ARENA_MAX, 1)
    return no_mmap and no_trim
