"""Contextual embeddings from a trained encoder: per-layer token vectors, word vectors, document vectors.

    rep = contextual_embeddings(model, tokenizer, "The king will play the part.")
    rep.layers.shape          # (n_layers + 1, T, d): layer 0 = token + position embedding, i = block i
    rep.word("play")          # (d,) the word's vector in the last layer (mean over its tokens)
    rep.word("play", layer=0) # ... in the embedding layer
    rep.static_word("play")   # the embedding-table rows alone: the same in every sentence
    rep.document()            # (d,) mean over the tokens of the final layer; pooling="cls" for [CLS]
    document_embedding(model, tokenizer, ["a text", "another"])   # (N, d)

The encoder is duck-typed, so this library layer never imports `models/`: it needs
`hidden_states(ids, attention_mask)` (the residual stream after each block, as
`models.MaskedLM` has), the token table `tok_emb.weight`, and optionally `ln_f` (the
final LayerNorm, applied to give `final`) and `config.max_len`. Texts are wrapped as
[CLS] text [SEP] when the tokenizer has those tokens, as the encoder saw them in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .autograd import no_grad


def cosine_similarity(a, b) -> float:
    """cos(a, b) of two vectors (0 when either is zero)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else 0.0


@dataclass
class TextRepresentation:
    """What the encoder made of one text. Token arrays include [CLS]/[SEP] where used.

    tokens: token strings; ids: (T,) ids; offsets: (start, end) of each token in `text`
    ((-1, -1) for the added [CLS]/[SEP]); layers: (L + 1, T, d); final: (T, d), the last
    layer after the final LayerNorm (what the MLM head reads; equal to layers[-1] if the
    model has none); static: (T, d), each token's embedding-table row (no position, no context).
    """
    text: str
    tokens: list
    ids: np.ndarray
    offsets: list
    layers: np.ndarray
    final: np.ndarray
    static: np.ndarray

    @property
    def text_positions(self) -> np.ndarray:
        """Indices of the tokens that come from the text (not [CLS]/[SEP])."""
        return np.array([i for i, (s, _) in enumerate(self.offsets) if s >= 0], dtype=np.int64)

    def _layer(self, layer) -> np.ndarray:
        if layer == "final":
            return self.final
        if layer == "static":
            return self.static
        n = self.layers.shape[0]
        if not -n <= layer < n:
            raise IndexError(f"layer {layer} out of range: this encoder has layers 0..{n - 1} (0 = embeddings)")
        return self.layers[layer]

    def span(self, start: int, end: int) -> np.ndarray:
        """Indices of the tokens overlapping characters [start, end) of the text."""
        idx = [i for i, (s, e) in enumerate(self.offsets) if s >= 0 and s < end and e > start]
        if not idx:
            raise ValueError(f"span: no token covers characters [{start}, {end}) of {self.text!r} "
                             "(cut off by max_len?)")
        return np.array(idx, dtype=np.int64)

    def word_positions(self, word: str, occurrence: int = 0) -> np.ndarray:
        """Token indices of the `occurrence`-th appearance of `word` in the text."""
        start = -1
        for _ in range(occurrence + 1):
            start = self.text.find(word, start + 1)
            if start < 0:
                raise ValueError(f"word: {word!r} occurs fewer than {occurrence + 1} times in {self.text!r}")
        return self.span(start, start + len(word))

    def word(self, word: str, layer=-1, occurrence: int = 0) -> np.ndarray:
        """The vector of `word` (mean over its tokens) in `layer`: an index, "final" or "static"."""
        return self._layer(layer)[self.word_positions(word, occurrence)].mean(axis=0)

    def static_word(self, word: str, occurrence: int = 0) -> np.ndarray:
        """The word from the embedding table alone: identical in every context."""
        return self.word(word, "static", occurrence)

    def document(self, pooling: str = "mean", layer="final") -> np.ndarray:
        """(d,): the mean over all tokens ([CLS] and [SEP] included, as MaskedLM.embed), or [CLS]'s vector."""
        h = self._layer(layer)
        if pooling == "cls":
            if not self.tokens or self.offsets[0][0] >= 0:
                raise ValueError("document: pooling='cls' needs a tokenizer with a [CLS] token")
            return h[0]
        if pooling != "mean":
            raise ValueError(f"document: pooling must be 'mean' or 'cls', got {pooling!r}")
        return h.mean(axis=0)

    def layer_similarity(self) -> np.ndarray:
        """(L + 1, L + 1): mean over text tokens of cos(token's vector in layer i, in layer j)."""
        h = self.layers[:, self.text_positions].astype(np.float64)
        h = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
        return np.einsum("itd,jtd->ij", h, h) / h.shape[1]


def _token_offsets(tokenizer, text: str, ids) -> list:
    """(start, end) of each id in `text`, by matching each decoded token at the current position.

    A token whose text does not match there (an [UNK], or one half of a multibyte
    character that BPE split) is taken to cover one character.
    """
    offsets, pos = [], 0
    for i in ids:
        piece = tokenizer.decode([int(i)])
        n = len(piece) if piece and text.startswith(piece, pos) else min(1, len(text) - pos)
        offsets.append((pos, pos + n))
        pos += n
    return offsets


def _specials(tokenizer):
    special = getattr(tokenizer, "special_ids", {}) or {}
    return special.get("[CLS]"), special.get("[SEP]")


def _max_len(model):
    config = getattr(model, "config", None)
    return getattr(config, "max_len", None) or getattr(config, "seq_len", None)


def contextual_embeddings(model, tokenizer, text: str) -> TextRepresentation:
    """Run the encoder on one text (eval mode, no graph) and keep every layer's token vectors."""
    if not hasattr(model, "hidden_states"):
        raise TypeError(f"contextual_embeddings: {type(model).__name__} has no hidden_states(ids, attention_mask); "
                        "pass an encoder such as models.MaskedLM")
    body = [int(i) for i in tokenizer.encode(text)]
    offsets = _token_offsets(tokenizer, text, body)
    cls_id, sep_id = _specials(tokenizer)
    wrap = cls_id is not None and sep_id is not None
    limit = _max_len(model)
    if limit is not None:
        body, offsets = body[:limit - 2 if wrap else limit], offsets[:limit - 2 if wrap else limit]
    ids = [cls_id] + body + [sep_id] if wrap else body
    offsets = [(-1, -1)] + offsets + [(-1, -1)] if wrap else offsets
    batch = np.array([ids], dtype=np.int64)
    mask = np.ones_like(batch, dtype=bool)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            states = model.hidden_states(batch, mask)
            final = model.ln_f(states[-1]) if hasattr(model, "ln_f") else states[-1]
            layers = np.stack([s.numpy()[0] for s in states]).astype(np.float32)
            final = final.numpy()[0].astype(np.float32)
    finally:
        model.train(was_training)
    static = model.tok_emb.weight.numpy()[np.array(ids)].astype(np.float32)
    tokens = [tokenizer.id_to_token(i) for i in ids]
    return TextRepresentation(text, tokens, np.array(ids, dtype=np.int64), offsets, layers, final, static)


def document_embedding(model, tokenizer, texts, pooling: str = "mean", layer="final") -> np.ndarray:
    """(d,) for one text, (N, d) for a list: mean-pooled over the tokens, or [CLS]'s vector (as MaskedLM.embed)."""
    if isinstance(texts, str):
        return contextual_embeddings(model, tokenizer, texts).document(pooling, layer)
    return np.stack([contextual_embeddings(model, tokenizer, t).document(pooling, layer) for t in texts])
