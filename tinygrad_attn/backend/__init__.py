"""Backends: the only place that knows NumPy from CuPy.

`contract.Backend` is what every backend provides (array namespace, data movement,
generator, row sums, named kernels); `get_backend(device)` gives the one of a device,
created on first use. The CuPy backend is imported only when a tensor asks for "cuda".
`keep_freed_host_memory()` and `set_num_threads(n)` are opt-in process settings for
training on the CPU (the trainer, the command line and the benchmarks call both).
`set_debug_checks(True)` turns on the value checks that cost a GPU synchronisation.
"""
from __future__ import annotations

from ..errors import DeviceError
from .contract import Backend
from .debug_checks import set_debug_checks
from .host_memory import keep_freed_host_memory

__all__ = ["Backend", "get_backend", "manual_seed", "cuda_is_available", "keep_freed_host_memory", "set_num_threads",
           "set_debug_checks"]

_BACKENDS: dict[str, object] = {}
_SEED: int | None = None

CPU = "cpu"
CUDA = "cuda"


def normalize_device(device) -> str:
    """Accept "cpu", "cuda", "cuda:0", "gpu"; return the canonical name."""
    name = str(device).lower()
    if name == CPU:
        return CPU
    if name in ("cuda", "gpu", "cuda:0"):
        return CUDA
    raise DeviceError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def get_backend(device="cpu"):
    """The backend object for a device, created (and seeded) on first use."""
    name = device if device in _BACKENDS else normalize_device(device)
    backend = _BACKENDS.get(name)
    if backend is None:
        if name == CPU:
            from .numpy_backend import NumpyBackend
            backend = NumpyBackend()
        else:
            from .cupy_backend import CupyBackend  # lazy: CuPy is optional
            backend = CupyBackend()
        if _SEED is not None:
            backend.seed(_SEED)
        _BACKENDS[name] = backend
    return backend


def backend_of_array(array):
    """The backend whose array type `array` is (NumPy unless it is a CuPy array)."""
    if type(array).__module__.startswith("cupy"):
        return get_backend(CUDA)
    return get_backend(CPU)


def set_num_threads(n: int | None = None) -> int:
    """Let the CPU's matrix products (BLAS) use `n` threads (default: OMP_NUM_THREADS, else the
    usable cores), and attention, GELU and LayerNorm as many when OpenBLAS's idle threads sleep
    soon (OPENBLAS_THREAD_TIMEOUT, see backend/cpu_threads.py). Like `torch.set_num_threads`, a
    process-wide choice: opted into, never made by import (ranks of a data-parallel run on one
    machine share its cores). Returns n."""
    return get_backend(CPU).set_num_threads(n)


def manual_seed(seed: int) -> None:
    """Seed every backend's generator (now and those created later)."""
    global _SEED
    _SEED = int(seed)
    for backend in _BACKENDS.values():
        backend.seed(_SEED)


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        get_backend(CUDA)
        return True
    except (DeviceError, ImportError):
        return False
