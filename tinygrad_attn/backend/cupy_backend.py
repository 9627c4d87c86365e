"""The GPU backend: CuPy arrays. Imported only when a tensor asks for device "cuda".

The named kernels are the CUDA kernels of cupy_kernels.py wherever one exists for the
dtypes and axis at hand, and array_kernels.py's array code otherwise.
"""
import numpy as np

from ..errors import DeviceError
from .array_kernels import ArrayKernels, picked_rows
from .contract import Backend

INSTALL_HINT = ("install the GPU extra that matches the driver's CUDA (nvidia-smi): pip install 'tinygrad_attn[gpu]' "
                "for CUDA 12 (cupy-cuda12x), or 'tinygrad_attn[gpu-cuda13]' for CUDA 13 (cupy-cuda13x)")


def _import_cupy():
    try:
        import cupy
    except ImportError:
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed; {INSTALL_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise DeviceError(f"device 'cuda': CuPy is installed but CUDA is not usable ({e}); it needs an NVIDIA "
                          f"GPU with a working driver, and a CuPy that matches the driver's CUDA: {INSTALL_HINT}") from None
    if count == 0:
        raise DeviceError("device 'cuda': CuPy is installed but no GPU is visible; it needs an NVIDIA GPU with a "
                          f"working driver (check nvidia-smi and CUDA_VISIBLE_DEVICES); {INSTALL_HINT}")
    return cupy


def _sample_dtype(dtype):
    """The dtype to draw in: float64 draws for float64, float32 draws for every narrower float."""
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


class CupyBackend(ArrayKernels, Backend):
    device = "cuda"
    collectives = "nccl"
    values_on_host = False  # reading a value waits for the GPU: checks only in debug mode

    def __init__(self):
        cupy = _import_cupy()
        import cupyx.scipy.special

        from .cupy_kernels import CupyFused  # compiles nothing yet: kernels build on first use

        self.xp = cupy
        self._erf = cupyx.scipy.special.erf
        self.rng = cupy.random.default_rng()
        self.cuda_kernels = CupyFused(cupy)

    def seed(self, seed: int) -> None:
        self.rng = self.xp.random.default_rng(seed)

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    @staticmethod
    def to_host(array):
        return array.get()

    def scatter_add(self, target, index, values) -> None:
        """target[index] += values, repeated indices accumulating. Rows picked by integer arrays
        (embedding and index gradients) are summed in a fixed order (sort, then one sum per run
        of equal ids), so two identical steps give the same bits; anything else (slices mixed
        with arrays) goes through CuPy's atomic add.at."""
        xp = self.xp
        rows = picked_rows(xp, target, index, mode="wrap")
        if rows is not None and self.cuda_kernels is not None and self.cuda_kernels.supports(target):
            self.cuda_kernels.scatter_add_rows(*rows, values)
            return
        xp.add.at(target, index, values)  # cupyx.scatter_add is deprecated in CuPy 14

    def erf(self, x):
        # cupyx computes float16 in float32: give the caller back its own dtype
        return self._erf(x).astype(x.dtype, copy=False)

    def random_normal(self, shape, dtype):
        return self.rng.standard_normal(shape, dtype=_sample_dtype(dtype)).astype(dtype, copy=False)

    def random_uniform(self, shape, dtype):
        return self.rng.random(shape, dtype=_sample_dtype(dtype)).astype(dtype, copy=False)

    def random_integers(self, low, high, shape):
        return self.rng.integers(low, high, size=shape, dtype=self.xp.int64)

    def synchronize(self) -> None:
        """Wait for the GPU to finish queued work (for timing)."""
        self.xp.cuda.get_current_stream().synchronize()

    # ---- rows and columns: CuPy's own reductions (what was measured on the GPU) -----
    @staticmethod
    def row_max(a):
        return a.max(axis=-1, keepdims=True)

    @staticmethod
    def row_sum(a):
        return a.sum(axis=-1, keepdims=True)

    @staticmethod
    def row_dot(a, b):
        return (a * b).sum(axis=-1, keepdims=True)

    @staticmethod
    def column_sum(a):
        return a.sum(axis=0)

    @staticmethod
    def column_dot(a, b):
        return (a * b).sum(axis=0)

    # ---- named kernels: one CUDA kernel where it exists for these arrays --------
    def _cuda(self, *arrays, axis=-1):
        if self.cuda_kernels is None:  # switched off (tests and benchmarks compare both ways)
            return None
        ndim = arrays[0].ndim
        fits = ndim > 0 and axis in (-1, ndim - 1) and self.cuda_kernels.supports(*arrays)
        return self.cuda_kernels if fits else None

    def softmax(self, x, axis, mask):
        cuda = self._cuda(x, axis=axis)
        return cuda.softmax(x, mask) if cuda else super().softmax(x, axis, mask)

    def softmax_backward(self, y, g, axis):
        cuda = self._cuda(y, g, axis=axis)
        return cuda.softmax_backward(y, g) if cuda else super().softmax_backward(y, g, axis)

    def log_softmax(self, x, axis):
        cuda = self._cuda(x, axis=axis)
        return cuda.log_softmax(x) if cuda else super().log_softmax(x, axis)

    def log_softmax_backward(self, y, g, axis):
        cuda = self._cuda(y, g, axis=axis)
        return cuda.log_softmax_backward(y, g) if cuda else super().log_softmax_backward(y, g, axis)

    def cross_entropy(self, logits, targets, ignore_index, label_smoothing):
        cuda = self._cuda(logits)
        if cuda is None:
            return super().cross_entropy(logits, targets, ignore_index, label_smoothing)
        loss, stats = cuda.cross_entropy(logits, targets, ignore_index, label_smoothing)
        return loss.astype(logits.dtype), ("cuda", stats)  # saved: per-row max and log-sum-exp

    def cross_entropy_backward(self, logits, targets, saved, grad_scale, ignore_index, label_smoothing):
        if not isinstance(saved, tuple):  # saved by the array kernels (the probabilities)
            return super().cross_entropy_backward(logits, targets, saved, grad_scale, ignore_index, label_smoothing)
        return self.cuda_kernels.cross_entropy_backward(logits, targets, saved[1], grad_scale, ignore_index,
                                                        label_smoothing)

    def layer_norm(self, x, weight, bias, eps):
        cuda = self._cuda(x, weight, bias)
        if cuda is None:
            return super().layer_norm(x, weight, bias, eps)
        y, mean, rstd = cuda.layer_norm(x, weight, bias, eps)
        return y, ("cuda", mean, rstd)

    def layer_norm_backward(self, x, weight, g, saved, needs):
        if not isinstance(saved[0], str):  # saved by the array kernels
            return super().layer_norm_backward(x, weight, g, saved, needs)
        return self.cuda_kernels.layer_norm_backward(x, weight, g, saved[1], saved[2], *needs)

    def gelu_tanh(self, x):
        cuda = self._cuda(x)
        return (cuda.gelu(x), None) if cuda else super().gelu_tanh(x)

    def gelu_tanh_backward(self, x, saved, g):
        if saved is None:
            return self.cuda_kernels.gelu_backward(x, g)
        return super().gelu_tanh_backward(x, saved, g)
