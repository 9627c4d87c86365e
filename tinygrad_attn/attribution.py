"""Which input tokens a prediction depends on: gradient x input, integrated gradients, attention rollout.

    f = attribution.logit_of(model, ids, position=3, token=7)   # embeddings (1, T, d) -> that logit
    x = attribution.token_embeddings(model, ids)                # (1, T, d) NumPy, the ids' lookup
    attribution.gradient_x_input(f, x)                          # (T,) per token: sum_d x * df/dx
    attribution.integrated_gradients(f, x, steps=32)            # (T,) sums to f(x) - f(baseline)
    with inspect.capture(model) as cap:
        model(ids)
    attribution.attention_rollout(cap)   # (B, T, T): R[b, i, j] = how much position i draws on token j

The gradient methods differentiate with respect to the token embeddings, which the
models take in place of the lookup (`model(ids, token_embeddings=...)`); positions are
still added inside the model.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeError
from .tensor import Tensor


def token_embeddings(model, ids) -> np.ndarray:
    """The ids' token-embedding lookup (B, T, d) as float64 NumPy: the input x the gradient methods perturb."""
    return np.asarray(model.tok_emb(np.asarray(ids)).numpy(), dtype=np.float64)


def logit_of(model, ids, position: int, token: int):
    """f(embeddings) -> the scalar logit of `token` at `position` (a next-token logit for GPT, a filled mask for MaskedLM)."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise ShapeError(f"logit_of: expected ids of shape (1, T), got {ids.shape}")

    dtype = model.tok_emb.weight.dtype

    def f(embeddings: Tensor) -> Tensor:   # in the model's dtype: float32 models take float64 paths too
        return model(ids, token_embeddings=embeddings.astype(dtype))[0, position, token]
    return f


def _gradient(f, x: np.ndarray) -> tuple[float, np.ndarray]:
    """f(x) and df/dx at x (NumPy in, NumPy out)."""
    t = Tensor(x, requires_grad=True, dtype="float64")
    out = f(t)
    out.backward()
    return float(out.numpy()), np.asarray(t.grad.numpy(), dtype=np.float64)


def gradient_x_input(f, x: np.ndarray) -> np.ndarray:
    """Per token, sum over d of x * df/dx: the first-order change of f when that token's embedding is removed."""
    _, g = _gradient(f, x)
    return (g * x).sum(axis=-1).reshape(x.shape[-2])


def integrated_gradients(f, x: np.ndarray, baseline=None, steps: int = 32) -> np.ndarray:
    """Per token, sum over d of (x - b) * the mean gradient along the straight path b -> x (trapezoid rule).

    baseline: None (zeros), or an array broadcastable to x (e.g. one embedding for every token).
    The attributions sum to f(x) - f(baseline), up to the trapezoid's O(1/steps^2) error.
    """
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    b = np.zeros_like(x) if baseline is None else np.broadcast_to(np.asarray(baseline, np.float64), x.shape)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2   # trapezoid: the end points count half
    mean_grad = sum(w * _gradient(f, b + a * (x - b))[1] for a, w in zip(np.linspace(0, 1, steps + 1), weights))
    return ((x - b) * mean_grad).sum(axis=-1).reshape(x.shape[-2])


def residual_corrected(weights: np.ndarray) -> np.ndarray:
    """One layer's (B, H, T, T) attention, heads averaged, as 0.5*A + 0.5*I with rows renormalised.

    The identity stands for the residual connection: a token keeps half of itself each layer.
    """
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ShapeError(f"attention_rollout: expected attention weights of shape (B, H, T, T), "
                         f"got {weights.shape}")
    a = 0.5 * weights.mean(axis=1) + 0.5 * np.eye(weights.shape[-1])
    return a / a.sum(axis=-1, keepdims=True)


def attention_rollout(cap, layers=None) -> np.ndarray:
    """The product, over the attention layers in forward order, of their residual-corrected maps.

    cap: an `inspect.Capture` after a forward pass (or a dict name -> (B, H, T, T) weights);
    layers: the layer names in forward order (default: every attention layer the capture saw).
    Returns (B, T, T): row i is how much the last layer's position i rolls back onto each input token.
    """
    maps = cap if isinstance(cap, dict) else cap.attention_weights
    names = list(layers) if layers is not None else (list(maps) if isinstance(cap, dict)
                                                      else list(cap.attention_layers))
    missing = [n for n in names if n not in maps]
    if not names or missing:
        raise ShapeError(f"attention_rollout: no attention weights for layers {missing or names}; "
                         f"run a forward pass inside inspect.capture(model) first (have: {list(maps)})")
    rollout = None
    for name in names:
        a = residual_corrected(np.asarray(maps[name], dtype=np.float64))
        if rollout is not None and rollout.shape != a.shape:
            raise ShapeError(f"attention_rollout: layer {name!r} has maps {a.shape}, earlier layers {rollout.shape}")
        # later layers act on what earlier layers already mixed: R_l = A_l @ R_{l-1}
        rollout = a if rollout is None else a @ rollout
    return rollout
