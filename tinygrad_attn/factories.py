"""Tensor constructors: tensor, zeros, ones, full, eye, arange, linspace, meshgrid, randn, rand, randint, *_like."""
import numpy as np

from .backend import get_backend, normalize_device
from .tensor import Tensor


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _make(array, requires_grad, device):
    t = Tensor.wrap(array, normalize_device(device))
    return t.requires_grad_(True) if requires_grad else t


def tensor(data, requires_grad=False, dtype=None, device="cpu") -> Tensor:
    """A new tensor from a number, (nested) list or array; Python floats become float32."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def zeros(*shape, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    return _make(get_backend(device).xp.zeros(_shape(shape), dtype=dtype), requires_grad, device)


def ones(*shape, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    return _make(get_backend(device).xp.ones(_shape(shape), dtype=dtype), requires_grad, device)


def full(shape, value, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    return _make(get_backend(device).xp.full(_shape((shape,)), value, dtype=dtype), requires_grad, device)


def full_like(t: Tensor, value, dtype=None, requires_grad=False) -> Tensor:
    return full(t.shape, value, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def eye(n, m=None, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """The (n, m) identity matrix (m = n by default)."""
    return _make(get_backend(device).xp.eye(n, m, dtype=dtype), requires_grad, device)


def linspace(start, stop, steps, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """`steps` evenly spaced values from start to stop, both included."""
    return _make(get_backend(device).xp.linspace(start, stop, int(steps), dtype=dtype), requires_grad, device)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors; indexing "ij" (matrix, PyTorch's default) or "xy".
    Each grid is an expanded view of its tensor, so gradients flow back to it."""
    tensors = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    sizes = [t.shape[0] for t in tensors]
    if indexing == "xy" and len(tensors) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    grids = []
    for i, t in enumerate(tensors):
        axis = i if indexing == "ij" or len(tensors) < 2 else {0: 1, 1: 0}.get(i, i)
        shape = [1] * len(tensors)
        shape[axis] = t.shape[0]
        grids.append(t.reshape(tuple(shape)).expand(tuple(sizes)))
    return tuple(grids)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, device="cpu") -> Tensor:
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, int) for v in (start, stop, step)) else np.float32
    return _make(get_backend(device).xp.arange(start, stop, step, dtype=dtype), False, device)


def randn(*shape, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """Standard normal samples from the backend's generator (seeded by manual_seed)."""
    return _make(get_backend(device).random_normal(_shape(shape), np.dtype(dtype)), requires_grad, device)


def rand(*shape, dtype=np.float32, device="cpu", requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from the backend's generator (seeded by manual_seed)."""
    return _make(get_backend(device).random_uniform(_shape(shape), np.dtype(dtype)), requires_grad, device)


def randint(low, high, shape, device="cpu") -> Tensor:
    return _make(get_backend(device).random_integers(low, high, _shape((shape,))), False, device)
