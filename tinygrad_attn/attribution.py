"""Which input tokens a prediction depends on: attention rollout across layers (Abnar & Zuidema, 2020).

    with inspect.capture(model) as cap:
        model(ids)
    R = attribution.attention_rollout(cap)   # (B, T, T): R[b, i, j] = how much position i draws on token j

Gradient x input and integrated gradients (issue 25) are not here yet: they need the
models to take token embeddings as an input, which they do not expose.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeError


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
