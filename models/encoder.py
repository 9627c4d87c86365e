"""MaskedLM: a BERT-style bidirectional encoder trained to fill in masked tokens.

    model = MaskedLM(MLMConfig(vocab_size=tok.vocab_size, pad_id=tok.token_to_id("[PAD]")))
    logits = model(ids, attention_mask)         # (B, T) -> (B, T, V); attention_mask True = real token
    loss = model.loss(ids, labels, attention_mask)   # cross entropy at positions whose label != -100
    model.fill_mask("To be or not to [MASK]", tok)  # [[(" be", 0.41), ...]]: tokens that begin a word
    model.embed("Now is the winter of our discontent", tok)  # (d_model,) mean of the last layer
    model.hidden_states(ids, attention_mask)     # [embeddings, block 1, ..., block N] (B, T, d) each

Every token attends to every real token (no causal mask); padding is hidden from the
keys by the key-padding mask. Sequences are [CLS] text [SEP] [PAD]...
"""
from __future__ import annotations

import re

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn

from .config import MLMConfig
from .embedding_input import check_token_embeddings

IGNORE_INDEX = -100


def _host(x):
    return x.numpy() if isinstance(x, tga.Tensor) else np.asarray(x)


def _proposable(tokenizer, texts) -> np.ndarray:
    """Bool (V,): tokens fill_mask may propose. Not specials, and not byte-level pieces that do
    not decode on their own (half a UTF-8 character) or control characters. `texts[i]` is
    tokenizer.decode([i]) (not id_to_token, which writes a lone byte as "<0xC3>")."""
    ok = np.array(["\ufffd" not in t and (t.isprintable() or t.isspace()) for t in texts])
    ok[list(tokenizer.special_ids.values())] = False
    return ok


def _word_starts(texts, after_space: bool) -> np.ndarray:
    """Bool (V,): tokens that begin a word: " " + letter after a space (BPE folds it in), else a letter."""
    pattern = re.compile(r" [A-Za-z]" if after_space else r"[A-Za-z]")
    return np.array([pattern.match(t) is not None for t in texts])


class MaskedLM(nn.Module):
    def __init__(self, config: MLMConfig):
        super().__init__()
        if config.vocab_size <= 0:
            raise ValueError("MaskedLM: config.vocab_size is not set (it comes from the trained tokenizer)")
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.pos_emb = nn.PositionalEmbedding(c.max_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([nn.TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout,
                                                         n_layers_for_init=c.n_layers) for _ in range(c.n_layers)])
        self.ln_f = nn.LayerNorm(c.d_model)
        # BERT's MLM head: transform, then decode with the (tied) token embedding plus a bias
        self.head_dense = nn.Linear(c.d_model, c.d_model)
        self.head_act = nn.GELU("tanh")
        self.head_ln = nn.LayerNorm(c.d_model)
        self.head_bias = nn.Parameter(tga.zeros(c.vocab_size))

    def _check(self, ids, attention_mask):
        ids = _host(ids)
        if ids.ndim != 2:
            raise ValueError(f"MaskedLM: expected ids of shape (batch, time), got {ids.shape}")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"MaskedLM: sequence of {ids.shape[1]} tokens exceeds max_len={self.config.max_len}")
        if attention_mask is not None:
            attention_mask = _host(attention_mask).astype(bool)
            if attention_mask.shape != ids.shape:
                raise ValueError(f"MaskedLM: attention_mask {attention_mask.shape} must match ids {ids.shape}")
        return ids, attention_mask

    def hidden_states(self, ids, attention_mask=None, token_embeddings=None) -> list:
        """[embedding output, output of block 1, ..., output of block N], each (B, T, d_model).

        These are the residual stream between blocks (before the final LayerNorm), part
        of the graph, so gradients can be taken with respect to them. `token_embeddings`
        (B, T, d_model), when given, stands in for tok_emb(ids) (for attribution).
        """
        ids, attention_mask = self._check(ids, attention_mask)
        tokens = self.tok_emb(ids) if token_embeddings is None else check_token_embeddings(
            "MaskedLM", token_embeddings, ids.shape, self.config.d_model)
        x = self.drop(tokens + self.pos_emb(ids.shape[1]))
        states = [x]
        for block in self.blocks:
            x = block(x, key_padding_mask=attention_mask)
            states.append(x)
        return states

    def encode(self, ids, attention_mask=None, token_embeddings=None):
        """The final representations (B, T, d_model): last block, then the final LayerNorm."""
        return self.ln_f(self.hidden_states(ids, attention_mask, token_embeddings)[-1])

    def head(self, h):
        """MLM head: (..., d_model) -> logits (..., V)."""
        h = self.head_ln(self.head_act(self.head_dense(h)))
        return h @ self.tok_emb.weight.T + self.head_bias

    def forward(self, ids, attention_mask=None, token_embeddings=None):
        """ids (B, T), attention_mask (B, T) bool (True = real token) -> logits (B, T, V)."""
        return self.head(self.encode(ids, attention_mask, token_embeddings))

    def loss(self, ids, labels, attention_mask=None):
        """Cross entropy at masked positions only (labels == -100 elsewhere).

        The head runs only on the rows that count (about 15% of tokens): the same loss as
        cross_entropy(self(ids), labels, ignore_index=-100), at a fraction of the cost.
        """
        logits, targets = self.masked_logits(ids, labels, attention_mask)
        return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)

    def masked_logits(self, ids, labels, attention_mask=None):
        """(logits (N, V), targets (N,)) at the N positions whose label != -100, in row-major order."""
        labels = _host(labels)
        rows, cols = np.nonzero(labels != IGNORE_INDEX)
        h = self.encode(ids, attention_mask)
        h = h[tga.tensor(rows, device=h.device), tga.tensor(cols, device=h.device)]   # (N, d)
        return self.head(h), labels[rows, cols]

    # ---------------------------------------------------------------- using a trained model

    def _wrap(self, tokenizer, text_or_ids):
        """[CLS] + ids + [SEP], cut to max_len."""
        ids = tokenizer.encode(text_or_ids) if isinstance(text_or_ids, str) else [int(i) for i in text_or_ids]
        ids = ids[: self.config.max_len - 2]
        return [tokenizer.token_to_id("[CLS]")] + ids + [tokenizer.token_to_id("[SEP]")]

    def fill_mask(self, text: str, tokenizer, top_k: int = 5, words_only: bool = True,
                  words=None) -> list[list[tuple[str, float]]]:
        """For each [MASK] in `text`, the top_k (token string, probability) candidates, best first.

        Special tokens are never proposed. With a BPE tokenizer, a space before [MASK]
        belongs to the masked word (" be" is one token), so it is folded into the mask.
        `words_only`: rank only tokens that can begin a word there (" be" after a space,
        "Be" at the start), not punctuation, newlines or the middle of a word ("y").
        `words`: a set of whole words (with their leading space, as `corpus_words` in
        models/cli.py gives them); only tokens that are one of them are ranked (" be", not " c").
        Probabilities are the model's, over every token it may propose, not renormalised.
        """
        if "[MASK]" not in text:
            raise ValueError(f"fill_mask: the text has no [MASK] token: {text!r}")
        after_space = [part.endswith(" ") for part in text.split("[MASK]")[:-1]]
        if getattr(tokenizer, "kind", "") == "bpe":
            text = text.replace(" [MASK]", "[MASK]")
        else:
            after_space = [False] * len(after_space)   # the space is a token of its own: the mask is the word
        ids = np.array([self._wrap(tokenizer, text)])
        mask_id = tokenizer.token_to_id("[MASK]")
        positions = np.nonzero(ids[0] == mask_id)[0]
        wanted = text.count("[MASK]")
        if positions.size < wanted:   # _wrap cut the text to max_len: answering only some masks would mislead
            raise ValueError(f"fill_mask: {wanted - positions.size} of {wanted} [MASK] tokens fall beyond "
                             f"max_len={self.config.max_len} tokens; shorten the text")
        was_training = self.training
        self.eval()
        try:
            with tga.no_grad():
                logits = self(ids).numpy()[0, positions].astype(np.float64)   # (n_masks, V)
        finally:
            self.train(was_training)
        texts = [tokenizer.decode([i]) for i in range(logits.shape[-1])]
        logits[:, ~_proposable(tokenizer, texts)] = -np.inf
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        out = []
        for row, spaced in zip(probs, after_space):
            allowed = _word_starts(texts, spaced) if words_only else np.ones(len(texts), dtype=bool)
            if words is not None:
                allowed &= np.array([t in words for t in texts])
            best = [i for i in np.argsort(-row, kind="stable") if allowed[i]][:top_k]
            out.append([(tokenizer.id_to_token(int(i)), float(row[i])) for i in best])
        return out

    def embed(self, text_or_ids, tokenizer=None, pooling: str = "mean") -> np.ndarray:
        """A document vector: the mean of the final representations over real tokens, or [CLS]'s.

        `text_or_ids`: a string (needs `tokenizer`), a list of ids, or a list of strings
        (padded into one batch). Returns (d_model,), or (N, d_model) for a list of strings.
        """
        if pooling not in ("mean", "cls"):
            raise ValueError(f"embed: pooling must be 'mean' or 'cls', got {pooling!r}")
        batch = isinstance(text_or_ids, (list, tuple)) and text_or_ids and isinstance(text_or_ids[0], str)
        items = list(text_or_ids) if batch else [text_or_ids]
        if tokenizer is None:
            if any(isinstance(t, str) for t in items):
                raise ValueError("embed: pass the tokenizer to embed text")
            rows = [[int(i) for i in t] for t in items]    # ids given as they are
            pad_id = self.tok_emb.padding_idx or 0
        else:
            rows = [self._wrap(tokenizer, t) for t in items]
            pad_id = tokenizer.token_to_id("[PAD]")
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=bool)
        for i, r in enumerate(rows):
            ids[i, :len(r)], mask[i, :len(r)] = r, True
        was_training = self.training
        self.eval()
        try:
            with tga.no_grad():
                h = self.encode(ids, mask).numpy().astype(np.float64)
        finally:
            self.train(was_training)
        if pooling == "cls":
            vectors = h[:, 0]
        else:
            vectors = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        vectors = vectors.astype(np.float32)
        return vectors if batch else vectors[0]
