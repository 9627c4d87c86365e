"""The GPU backend: CuPy arrays. Imported only when a tensor asks for device "cuda"."""
import numpy as np

from ..errors import DeviceError

INSTALL_HINT = ("install the GPU extra with: pip install 'tinygrad_attn[gpu]' "
                "(it pulls CuPy for CUDA 12, cupy-cuda12x; on CUDA 13 install cupy-cuda13x instead)")


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


class CupyBackend:
    device = "cuda"

    def __init__(self):
        cupy = _import_cupy()
        import cupyx
        import cupyx.scipy.special

        from .cupy_kernels import CupyFused  # compiles nothing yet: kernels build on first use

        self.xp = cupy
        self._cupyx = cupyx
        self._erf = cupyx.scipy.special.erf
        self.rng = cupy.random.default_rng()
        self.fused = CupyFused(cupy)

    def seed(self, seed: int) -> None:
        self.rng = self.xp.random.default_rng(seed)

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    @staticmethod
    def to_host(array):
        return array.get()

    def scatter_add(self, target, index, values) -> None:
        """target[index] += values, repeated indices accumulating (atomics on the GPU)."""
        self._cupyx.scatter_add(target, index, values)

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
