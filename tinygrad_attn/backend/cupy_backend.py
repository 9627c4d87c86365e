"""The GPU backend: CuPy arrays. Imported only when a tensor asks for device "cuda"."""
from ..errors import DeviceError

_INSTALL_HINT = "install the GPU extra with: pip install 'tinygrad_attn[gpu]' (CuPy for CUDA 12: cupy-cuda12x)"


def _import_cupy():
    try:
        import cupy
    except ImportError:
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed; {_INSTALL_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise DeviceError(f"device 'cuda': CuPy is installed but CUDA is not usable ({e})") from None
    if count == 0:
        raise DeviceError("device 'cuda': CuPy is installed but no GPU is visible")
    return cupy


class CupyBackend:
    device = "cuda"
    fused = None

    def __init__(self):
        cupy = _import_cupy()
        self.xp = cupy
        self.rng = cupy.random.default_rng()

    def seed(self, seed: int) -> None:
        self.rng = self.xp.random.default_rng(seed)

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    @staticmethod
    def to_host(array):
        return array.get()

    @staticmethod
    def scatter_add(target, index, values) -> None:
        import cupyx
        cupyx.scatter_add(target, index, values)

    def erf(self, x):
        from cupyx.scipy.special import erf
        return erf(x)

    def random_normal(self, shape, dtype):
        return self.rng.standard_normal(shape, dtype=self.xp.float32).astype(dtype, copy=False)

    def random_uniform(self, shape, dtype):
        return self.rng.random(shape, dtype=self.xp.float32).astype(dtype, copy=False)

    def random_integers(self, low, high, shape):
        return self.rng.integers(low, high, size=shape, dtype=self.xp.int64)
