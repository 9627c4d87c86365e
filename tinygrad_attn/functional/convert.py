"""Moving between devices and dtypes."""
from __future__ import annotations

import numpy as np

from ..ops import convert as C


def to_device(x, device):
    return C.ToDevice.apply(x, device=device)


def cast(x, dtype):
    dtype = np.dtype(dtype) if not str(dtype) == "bfloat16" else dtype
    if x.dtype == dtype:
        return x
    return C.Cast.apply(x, dtype=dtype)
