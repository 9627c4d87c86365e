"""Small helpers shared by the op tests: float64 tensors, closeness, hypothesis settings."""
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinygrad_attn as tga

# the `device` fixture is function-scoped; hypothesis would warn about it on every test
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])


def T(a, device, grad=True, dtype=np.float64):
    """A float64 tensor on `device` (gradient checks run in float64), or of `dtype`."""
    return tga.Tensor(np.asarray(a, dtype=dtype), requires_grad=grad, device=device)


def close(tensor, expected, rtol=1e-10, atol=1e-12):
    got = tensor.numpy() if isinstance(tensor, tga.Tensor) else tensor
    assert np.shape(got) == np.shape(expected), (np.shape(got), np.shape(expected))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- NumPy references (float64, stable)

from tinygrad_attn.functional.references import attention_with_weights as np_attention  # noqa: E402,F401
from tinygrad_attn.functional.references import softmax as np_softmax  # noqa: E402,F401


def _blas_is_openblas() -> bool:
    from threadpoolctl import threadpool_info
    return [lib["internal_api"] for lib in threadpool_info() if lib["user_api"] == "blas"] == ["openblas"]


# the tests of OpenBLAS's idle-thread spin: another BLAS (MKL, Accelerate) has no such setting to change
needs_openblas = pytest.mark.skipif(not _blas_is_openblas(), reason="the spin is OpenBLAS's; this NumPy uses another BLAS")
