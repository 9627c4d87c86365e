"""In-place initialisers for parameters (`nn.init.normal_(layer.weight, std=0.02)`).

They write into `tensor.data` directly, outside the graph, and draw from the backend's
generator, so `tga.manual_seed(n)` makes a model's initial weights repeat exactly.
"""
import numpy as np

from ..tensor import Tensor


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    backend = t.backend
    t.data[...] = backend.random_normal(t.shape, np.dtype(t.dtype)) * std + mean
    return t


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    backend = t.backend
    t.data[...] = backend.random_uniform(t.shape, np.dtype(t.dtype)) * (b - a) + a
    return t


def constant_(t: Tensor, value: float) -> Tensor:
    t.data[...] = value
    return t


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)
