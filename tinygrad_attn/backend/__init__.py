"""The backend contract: the only place that knows NumPy from CuPy.

A backend gives the engine
  - `xp`: its array namespace (NumPy 2 and CuPy both follow the Array API closely,
    so op code is written once against `xp`),
  - `device`: the device name a Tensor reports ("cpu" or "cuda"),
  - `asarray` / `to_host`: moving data in and out,
  - `rng` / `seed`: a seeded random generator,
  - `scatter_add(target, index, values)`: `target[index] += values` with repeated
    indices accumulated (the Array API lacks it; embedding gradients need it),
  - `erf`: the error function for the exact GELU,
  - `fused`: an optional object of fused kernels that ops may use when present.
Backends are created on first use; the CuPy one is imported only when asked for.
"""
from __future__ import annotations

from ..errors import DeviceError

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
