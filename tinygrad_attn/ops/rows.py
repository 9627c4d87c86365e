"""Sums along the last axis (and down the rows of a matrix) that NumPy does fast.

`a.sum(axis=-1)` over short rows (d = 128) goes through NumPy's general reduction
machinery, which pays per row; `einsum` runs one SIMD sum-of-products loop instead:
2-4x faster here for the row means and dot products of layer norm, softmax and
attention (measured: layer norm forward 0.94 -> 0.59 ms, backward 2.6 -> 1.8 ms at
(32, 128, 128) float32). Both accumulate in the array's dtype. Other backends (CuPy)
keep their own `sum`, which is what was measured on the GPU.
"""
import numpy as np


def row_sum(xp, a):
    """a.sum(axis=-1, keepdims=True)."""
    if xp is np:
        return np.einsum("...i->...", a)[..., None]
    return a.sum(axis=-1, keepdims=True)


def row_dot(xp, a, b):
    """(a * b).sum(axis=-1, keepdims=True), without the product array."""
    if xp is np:
        return np.einsum("...i,...i->...", a, b)[..., None]
    return (a * b).sum(axis=-1, keepdims=True)


def column_sum(xp, a):
    """a.sum(axis=0) of a matrix (n, d): the gradient of a bias."""
    if xp is np:
        return np.einsum("ni->i", a)
    return a.sum(axis=0)


def column_dot(xp, a, b):
    """(a * b).sum(axis=0) of matrices (n, d): the gradient of a scale."""
    if xp is np:
        return np.einsum("ni,ni->i", a, b)
    return (a * b).sum(axis=0)
