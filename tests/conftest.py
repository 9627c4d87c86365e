"""Shared test setup: hypothesis profiles and the `device` fixture.

Profiles: "ci" (few examples, deterministic) when CI=true, "dev" (many) otherwise;
pick one by hand with HYPOTHESIS_PROFILE=ci|dev|thorough.
Every test that takes `device` runs on the CPU and, where CuPy sees a GPU, on CUDA;
without a GPU the CUDA case is skipped with the reason.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_attn as tga

settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


def _cuda_skip_reason():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'tinygrad_attn[gpu]')"
    if not tga.cuda_is_available():
        return "CuPy is installed but no CUDA GPU is visible"
    return None


_CUDA_SKIP = _cuda_skip_reason()

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(_CUDA_SKIP is not None, reason=str(_CUDA_SKIP)))]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device name to run on: "cpu", and "cuda" where available."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    tga.manual_seed(0)
    yield
