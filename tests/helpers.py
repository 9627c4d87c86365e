"""Small helpers shared by the op tests: float64 tensors, closeness, hypothesis settings."""
import numpy as np
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

def np_softmax(x, axis=-1, mask=None):
    x = np.asarray(x, dtype=np.float64)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return np.divide(e, s, out=np.zeros_like(e), where=s > 0)


def np_attention(q, k, v, mask=None, causal=False, float_mask=None, scale=None):
    tq, tk = q.shape[-2], k.shape[-2]
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if float_mask is not None:
        s = s + float_mask
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= mask
    if causal:
        i, j = np.arange(tq)[:, None], np.arange(tk)[None, :]
        allowed &= j <= i + (tk - tq)  # bottom-right aligned (KV-cache decoding)
    w = np_softmax(s, -1, allowed)
    return w @ v, w
