"""GPT: a causal decoder (token + learned position embeddings, pre-norm blocks, tied LM head) and sampling.

    model = GPT(GPTConfig(vocab_size=65))
    logits = model(ids)                                # (B, T) ids -> (B, T, V) logits
    loss = model.loss(ids, targets)                    # mean next-token cross entropy
    out = model.generate(prompt_ids, 200, temperature=0.8, top_k=40, seed=0)
    model.hidden_states(ids)                           # [embeddings, block 1, ..., block N] (B, T, d) each

`generate` keeps a KV cache, so each new token runs the network on one position. Both
the cached and the uncached path look at the same window of the sequence (see
`_window_start`), so for the same seed they sample the same tokens.
"""
from __future__ import annotations

import numpy as np

import tinygrad_attn as tga
from tinygrad_attn import functional as F
from tinygrad_attn import nn

from .config import GPTConfig
from .embedding_input import check_token_embeddings


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.vocab_size <= 0:
            raise ValueError("GPT: config.vocab_size is not set (it comes from the trained tokenizer)")
        c = self.config = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.PositionalEmbedding(c.seq_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([nn.TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout,
                                                         n_layers_for_init=c.n_layers) for _ in range(c.n_layers)])
        self.ln_f = nn.LayerNorm(c.d_model)

    def hidden_states(self, ids, attention_mask=None, kv_cache: nn.KVCache | None = None,
                      token_embeddings=None) -> list:
        """[embedding output, output of block 1, ..., output of block N], each (B, T, d_model).

        The residual stream between blocks (before the final LayerNorm), part of the graph,
        as MaskedLM.hidden_states; position t sees positions <= t only. `attention_mask`
        (B, T) bool, True = real token, hides padding from the keys as well. With a
        `kv_cache` the ids continue the cached sequence (see forward). `token_embeddings`
        (B, T, d_model), when given, stands in for tok_emb(ids): the input that attribution
        differentiates with respect to (positions are still added).
        """
        ids = ids.numpy() if isinstance(ids, tga.Tensor) else np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"GPT: expected ids of shape (batch, time), got {ids.shape}")
        offset = 0 if kv_cache is None else kv_cache.length
        if offset + ids.shape[1] > self.config.seq_len:
            raise ValueError(f"GPT: {offset} cached + {ids.shape[1]} new positions exceed the context window "
                             f"seq_len={self.config.seq_len}")
        if attention_mask is not None:
            attention_mask = np.asarray(attention_mask.numpy() if isinstance(attention_mask, tga.Tensor)
                                        else attention_mask).astype(bool)
            if attention_mask.shape != ids.shape or kv_cache is not None:
                raise ValueError(f"GPT: attention_mask {attention_mask.shape} must match ids {ids.shape} "
                                 "(and cannot be combined with a KV cache)")
        tokens = self.tok_emb(ids) if token_embeddings is None else check_token_embeddings(
            "GPT", token_embeddings, ids.shape, self.config.d_model)
        x = self.drop(tokens + self.pos_emb(ids.shape[1], offset))
        states = [x]
        for i, block in enumerate(self.blocks):
            x = block(x, key_padding_mask=attention_mask, is_causal=True,
                      kv_cache=None if kv_cache is None else kv_cache[i])
            states.append(x)
        return states

    def forward(self, ids, kv_cache: nn.KVCache | None = None, last_only: bool = False, token_embeddings=None):
        """ids (B, T) -> logits (B, T, V), or (B, 1, V) with `last_only`.

        With a `kv_cache` the ids continue the cached sequence: their positions start at
        the cache length, and they attend to the cached keys as well as to each other.
        """
        x = self.hidden_states(ids, kv_cache=kv_cache, token_embeddings=token_embeddings)[-1]
        if last_only:
            x = x[:, -1:]
        # the head is the token embedding read backwards (tied weights): fewer parameters,
        # and a token's input and output vectors learn from each other
        return self.ln_f(x) @ self.tok_emb.weight.T

    def loss(self, ids, targets):
        """Mean cross entropy of predicting targets (B, T) from ids (B, T)."""
        return F.cross_entropy(self(ids), targets)

    # ---------------------------------------------------------------- sampling

    def _window_start(self, start: int, length: int) -> int:
        """Where the context window begins for a sequence of `length` tokens.

        The window stays put until it is full; then it jumps forward so that the last
        3/4 of the window remain. With a cache, a jump means: reset and prefill those
        tokens again (positions are absolute, so cached keys cannot be shifted).
        Cached and uncached generation both use this rule, so they see the same tokens.
        """
        window = self.config.seq_len
        if length - start <= window:
            return start
        keep = window - max(1, window // 4)
        return length - keep

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, use_cache: bool = True,
                 return_logits: bool = False, on_token=None):
        """Sample `max_new_tokens` tokens after `prompt_ids` (a 1-D sequence); return all ids as a list.

        `on_token(id)` is called with each new id as soon as it is drawn (to stream the text).

        temperature 0 means greedy. `top_k` keeps the k most likely tokens, `top_p` the
        smallest set whose probability reaches p. Draws come from
        `np.random.default_rng(seed)`. With `return_logits` also return the raw logits
        of every step, (max_new_tokens, V) float32.
        """
        ids = [int(i) for i in np.asarray(prompt_ids).reshape(-1)]
        if not ids:
            raise ValueError("generate: the prompt must hold at least one token")
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        cache = nn.KVCache(len(self.blocks)) if use_cache else None
        start, cached, all_logits = 0, 0, []
        try:
            with tga.no_grad():
                for _ in range(max_new_tokens):
                    new_start = self._window_start(start, len(ids))
                    if use_cache:
                        if new_start != start:
                            cache.reset()
                            cached = 0
                        fresh = ids[new_start + cached:]   # prefill (many tokens) or one new token
                        logits = self(np.array([fresh]), kv_cache=cache, last_only=True)
                        cached = len(ids) - new_start
                    else:
                        logits = self(np.array([ids[new_start:]]), last_only=True)
                    start = new_start
                    row = logits.numpy()[0, -1]
                    all_logits.append(row)
                    ids.append(sample_token(row, rng, temperature, top_k, top_p))
                    if on_token is not None:
                        on_token(ids[-1])
        finally:
            self.train(was_training)
        if return_logits:
            return ids, np.stack(all_logits) if all_logits else np.zeros((0, self.config.vocab_size), np.float32)
        return ids


def sample_token(logits, rng: np.random.Generator, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None) -> int:
    """Pick one token id from a row of logits. Exactly one uniform draw per call (none when greedy),
    so two callers with the same generator stay in step."""
    logits = np.asarray(logits, dtype=np.float64)
    if not temperature >= 0:   # written so that NaN fails too
        raise ValueError(f"sample: temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"sample: top_p must be in (0, 1], got {top_p}")
    if not np.all(np.isfinite(logits)):
        raise ValueError("sample: the logits are not all finite (NaN or inf): are the weights corrupt?")
    if temperature == 0:
        return int(np.argmax(logits))
    # shifted by the max before the division, so a tiny temperature (1e-320) sends the others to
    # -inf (probability 0) and the max stays 0, where dividing first made inf - inf = NaN
    with np.errstate(over="ignore"):
        logits = (logits - logits.max()) / temperature
    if top_k is not None and top_k < logits.size:
        if top_k < 1:
            raise ValueError(f"sample: top_k must be >= 1, got {top_k}")
        kth = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= kth, logits, -np.inf)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        n_keep = int(np.searchsorted(cumulative, top_p)) + 1   # smallest prefix reaching top_p
        kept = np.zeros_like(probs)
        kept[order[:n_keep]] = probs[order[:n_keep]]
        probs = kept / kept.sum()
    # inverse CDF with a single draw; scaling by cdf[-1] keeps rounding from picking a 0-probability tail
    cdf = np.cumsum(probs)
    return int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
