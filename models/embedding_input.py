"""Token embeddings passed in place of ids' lookup: the input hook that attribution differentiates."""
from __future__ import annotations

import tinygrad_attn as tga
from tinygrad_attn.errors import ShapeError


def check_token_embeddings(model: str, token_embeddings, ids_shape, d_model: int):
    """The (B, T, d_model) Tensor that stands in for tok_emb(ids), or a ShapeError that says what was expected."""
    if not isinstance(token_embeddings, tga.Tensor):
        raise ShapeError(f"{model}: token_embeddings must be a Tensor, got {type(token_embeddings).__name__}")
    expected = (*ids_shape, d_model)
    if tuple(token_embeddings.shape) != expected:
        raise ShapeError(f"{model}: token_embeddings of shape {tuple(token_embeddings.shape)} do not fit ids "
                         f"{tuple(ids_shape)}; expected {expected}")
    return token_embeddings
