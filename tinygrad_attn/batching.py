"""Batches of token ids for training: causal-LM windows and BERT-style masked-LM rows.

Pure NumPy on the host. Every array is int64 token ids (bool for attention masks); all
randomness comes from the `np.random.Generator` passed in, so a seeded run repeats.
"""
import numpy as np

IGNORE_INDEX = -100  # label for positions the loss skips (cross_entropy's ignore_index)


def _as_ids(ids, who):
    """A 1-D integer array, NOT copied to int64: a memory-mapped uint16 corpus stays on disk (windows are cast)."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        ids = ids.astype(np.int64)
    if ids.ndim != 1:
        raise ValueError(f"{who}: expected a 1-D array of token ids, got shape {ids.shape}")
    return ids


def _check_length(ids, window, who):
    if len(ids) < window:
        raise ValueError(f"{who}: corpus has {len(ids)} tokens but one window needs {window}; "
                         f"use a shorter seq_len or more text")


def lm_batches(ids, batch_size: int, seq_len: int, rng: np.random.Generator):
    """Random windows of seq_len+1 tokens -> (x, y), each (batch_size, seq_len); y is x shifted left by one."""
    ids = _as_ids(ids, "lm_batches")
    _check_length(ids, seq_len + 1, "lm_batches")
    starts = rng.integers(0, len(ids) - seq_len, size=batch_size)
    windows = ids[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64)
    return windows[:, :-1], windows[:, 1:]


def lm_eval_batches(ids, batch_size: int, seq_len: int, max_batches: int | None = None):
    """Yield deterministic (x, y) batches that walk the corpus in order.

    Window k starts at k*seq_len, so the targets of successive windows never overlap and
    each token is predicted once. The last batch may hold fewer than batch_size rows.
    `max_batches` caps the count (for a quick eval on a large corpus).
    """
    ids = _as_ids(ids, "lm_eval_batches")
    _check_length(ids, seq_len + 1, "lm_eval_batches")
    n_windows = (len(ids) - 1) // seq_len
    starts = np.arange(n_windows) * seq_len
    for b, first in enumerate(range(0, n_windows, batch_size)):
        if max_batches is not None and b >= max_batches:
            return
        windows = ids[starts[first:first + batch_size, None] + np.arange(seq_len + 1)].astype(np.int64)
        yield windows[:, :-1], windows[:, 1:]


def word_starts(ids, starts_with_letter, ends_with_letter) -> np.ndarray:
    """Bool, same shape as `ids` (rows along the last axis): True where a token begins a new word.

    A token continues a word when it begins with a letter and the token before it ends with
    one ("t" + "he"); " the" (leading space), digits and punctuation always begin one.
    `starts_with_letter` / `ends_with_letter` are bool arrays over the vocabulary.
    """
    ids = np.asarray(ids, dtype=np.int64)
    continues = np.zeros(ids.shape, dtype=bool)
    continues[..., 1:] = starts_with_letter[ids[..., 1:]] & ends_with_letter[ids[..., :-1]]
    return ~continues


def _first_of_word(starts):
    """For each position, the index of the first token of its word."""
    positions = np.broadcast_to(np.arange(starts.shape[-1]), starts.shape)
    return np.maximum.accumulate(np.where(starts, positions, 0), axis=-1)


def _per_word(values, starts):
    """Each position takes the value drawn at the first token of its word."""
    return np.take_along_axis(values, _first_of_word(starts), axis=-1)


def mask_tokens(ids, rng: np.random.Generator, mask_id: int, vocab_size: int, special_ids, pad_id: int,
                mask_prob: float = 0.15, starts=None):
    """BERT masking -> (inputs, labels), same shape as `ids` (rows along the last axis).

    Chooses each non-special, non-pad position with probability `mask_prob` (at least one
    per row that has any such position, so the loss is never empty). Of the chosen: 80%
    become `mask_id`, 10% a random non-special token, 10% stay. labels hold the original id
    at chosen positions and IGNORE_INDEX (-100) elsewhere.
    With `starts` (see `word_starts`), whole-word masking: every token of a word gets the
    draw of its first token, so a word is chosen (and masked, replaced or kept) as a unit.
    """
    ids = np.asarray(ids, dtype=np.int64)
    excluded = np.unique(np.array([*special_ids, pad_id, mask_id], dtype=np.int64))
    maskable = ~np.isin(ids, excluded)
    draw = rng.random(ids.shape)
    chosen = ((draw if starts is None else _per_word(draw, starts)) < mask_prob) & maskable

    # Rows that drew nothing but could: choose one maskable position uniformly at random.
    empty = maskable.any(axis=-1) & ~chosen.any(axis=-1)
    scores = np.where(maskable, rng.random(ids.shape), -1.0)
    if starts is None:
        forced = np.zeros_like(chosen)
        np.put_along_axis(forced, scores.argmax(axis=-1)[..., None], True, axis=-1)
    else:   # the whole word of a random maskable word start
        pick = np.where(starts, scores, -1.0).argmax(axis=-1)
        forced = (_first_of_word(starts) == pick[..., None]) & maskable
    chosen |= forced & empty[..., None]

    action = rng.random(ids.shape)
    if starts is not None:
        action = _per_word(action, starts)
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    candidates = np.setdiff1d(np.arange(vocab_size, dtype=np.int64), excluded)
    random_tokens = rng.choice(candidates, size=ids.shape)

    inputs = np.where(to_mask, mask_id, np.where(to_random, random_tokens, ids))
    labels = np.where(chosen, ids, IGNORE_INDEX)
    return inputs, labels


def mlm_batches(ids, batch_size: int, seq_len: int, rng: np.random.Generator, cls_id: int, sep_id: int,
                pad_id: int, mask_id: int, vocab_size: int, special_ids=(), mask_prob: float = 0.15,
                short_prob: float = 0.1, letters=None):
    """Masked-LM batch -> (inputs, labels, attention_mask), each (batch_size, seq_len).

    Each row is [CLS] + a random window of seq_len-2 tokens + [SEP]. With probability
    `short_prob` a row's window is cut to a random shorter length and the row is padded
    with pad_id, so key-padding masks get exercised. attention_mask is bool, True = real
    token ([CLS]/[SEP] included). Then `mask_tokens` picks the prediction targets, whole
    words at a time when `letters` = (starts_with_letter, ends_with_letter) over the vocabulary.
    """
    ids = _as_ids(ids, "mlm_batches")
    if seq_len < 3:
        raise ValueError(f"mlm_batches: seq_len={seq_len} leaves no room for text between [CLS] and [SEP]")
    body = seq_len - 2
    _check_length(ids, body, "mlm_batches")
    starts = rng.integers(0, len(ids) - body + 1, size=batch_size)
    windows = ids[starts[:, None] + np.arange(body)].astype(np.int64)

    lengths = np.full(batch_size, body)
    short = rng.random(batch_size) < short_prob
    lengths[short] = rng.integers(1, body + 1, size=int(short.sum()))

    positions = np.arange(seq_len)
    rows = np.full((batch_size, seq_len), pad_id, dtype=np.int64)
    rows[:, 0] = cls_id
    in_body = (positions[None, 1:-1] <= lengths[:, None])
    rows[:, 1:-1] = np.where(in_body, windows, pad_id)
    rows[np.arange(batch_size), lengths + 1] = sep_id
    attention_mask = positions[None, :] < (lengths[:, None] + 2)

    special = (*special_ids, cls_id, sep_id)
    starts = None if letters is None else word_starts(rows, *letters)
    inputs, labels = mask_tokens(rows, rng, mask_id, vocab_size, special, pad_id, mask_prob, starts)
    return inputs, labels, attention_mask
