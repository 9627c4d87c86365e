"""Tests for the bundled corpus, text loading, LM batches and BERT masking."""
import functools

import numpy as np
import pytest

from tinygrad_attn.batching import (IGNORE_INDEX, lm_batches, lm_eval_batches, mask_tokens, mlm_batches,
                                   word_starts)
from tinygrad_attn.data import corpus_splits, load_shakespeare, load_text_file, split_text

PAD, MASK, CLS, SEP, UNK = range(5)
SPECIAL_IDS = (PAD, MASK, CLS, SEP, UNK)
VOCAB = 100

plays = functools.lru_cache(maxsize=None)(load_shakespeare)


# ---- corpus ---------------------------------------------------------------------------

def test_corpus_has_42_texts_and_over_4mb():
    texts = plays()
    assert len(texts) == 42
    assert {"hamlet", "lear", "tempest", "sonnets"} <= set(texts)
    assert sum(len(t) for t in texts.values()) > 4_000_000
    assert texts["lear"].startswith("THE TRAGEDY OF KING LEAR")
    assert not any("\n=== " in t or t.startswith("=== ") for t in texts.values())


def test_held_out_split_is_whole_plays_not_in_train():
    texts = plays()
    train, evaluation = corpus_splits(texts, n_eval_plays=2, seed=0)
    held_out = [name for name, t in texts.items() if t in evaluation]
    assert len(held_out) == 2
    assert evaluation == "\n\n".join(texts[n] for n in sorted(held_out))
    for name, text in texts.items():
        assert (text in train) != (name in held_out)
    assert corpus_splits(texts, 2, seed=0) == (train, evaluation)


def test_corpus_splits_rejects_bad_counts():
    with pytest.raises(ValueError, match="n_eval_plays"):
        corpus_splits({"a": "x", "b": "y"}, n_eval_plays=2)


def test_load_text_file(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")
    text = load_text_file(path)
    train, evaluation = split_text(text)
    assert train + evaluation == text and len(evaluation) == 10
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_text_file(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text(" \n")
    with pytest.raises(ValueError, match="empty"):
        load_text_file(tmp_path / "empty.txt")


# ---- causal LM batches ----------------------------------------------------------------

def test_lm_batches_shift_and_determinism():
    ids = np.arange(1000, dtype=np.int64)
    x, y = lm_batches(ids, batch_size=8, seq_len=16, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == np.int64
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)  # contiguous windows of the corpus
    x2, y2 = lm_batches(ids, 8, 16, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_lm_batches_short_corpus():
    x, y = lm_batches(np.arange(17), 4, 16, np.random.default_rng(0))  # exactly one window fits
    np.testing.assert_array_equal(x[0], np.arange(16))
    with pytest.raises(ValueError, match="16 tokens but one window needs 17"):
        lm_batches(np.arange(16), 4, 16, np.random.default_rng(0))


def test_lm_batches_draw_every_window_the_corpus_end_included():
    ids = np.arange(20)                                   # windows of 17 tokens: starts 0, 1, 2, 3
    x, _ = lm_batches(ids, 400, 16, np.random.default_rng(0))
    assert set(x[:, 0].tolist()) == {0, 1, 2, 3}


def test_lm_eval_batches_cover_corpus_in_order():
    ids = np.arange(101)
    batches = list(lm_eval_batches(ids, batch_size=3, seq_len=10))
    targets = np.concatenate([y.ravel() for _, y in batches])
    np.testing.assert_array_equal(targets, np.arange(1, 101))
    assert [x.shape[0] for x, _ in batches] == [3, 3, 3, 1]
    assert len(list(lm_eval_batches(ids, 3, 10, max_batches=2))) == 2


# ---- BERT masking ---------------------------------------------------------------------

def test_mask_tokens_proportions():
    rng = np.random.default_rng(0)
    ids = rng.integers(len(SPECIAL_IDS), VOCAB, size=(1000, 128))
    ids[:, 0], ids[:, -1], ids[:, -10:-1] = CLS, SEP, PAD  # specials and padding
    inputs, labels = mask_tokens(ids, rng, MASK, VOCAB, SPECIAL_IDS, PAD)
    chosen = labels != IGNORE_INDEX
    maskable = ~np.isin(ids, SPECIAL_IDS)
    assert maskable.sum() > 100_000
    assert abs(chosen.sum() / maskable.sum() - 0.15) < 0.01
    assert not (chosen & ~maskable).any()
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])
    n = chosen.sum()
    as_mask = (inputs[chosen] == MASK).sum() / n
    kept = (inputs[chosen] == ids[chosen]).sum() / n
    randomised = 1.0 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(randomised - 0.1) < 0.02
    assert not np.isin(inputs[chosen & (inputs != MASK)], SPECIAL_IDS).any()


def test_mask_tokens_chooses_at_least_one_per_row():
    rng = np.random.default_rng(1)
    ids = np.array([[CLS, 7, 8, SEP], [CLS, 9, SEP, PAD], [CLS, SEP, PAD, PAD]])
    _, labels = mask_tokens(ids, rng, MASK, VOCAB, SPECIAL_IDS, PAD, mask_prob=0.0)
    assert (labels != IGNORE_INDEX).sum(axis=1).tolist() == [1, 1, 0]


def test_word_starts_and_whole_word_masking():
    # vocabulary: 5 specials, then " the", "t", "he", ".", " k", "ing", "1"
    texts = ["[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]", " the", "t", "he", ".", " k", "ing", "1"]
    letters = (np.array([t[:1].isalpha() for t in texts]), np.array([t[-1:].isalpha() for t in texts]))
    row = np.array([CLS, 6, 7, 5, 9, 10, 8, 11, 9, 10, SEP])          # [CLS] t|he  the  k|ing . 1  k|ing [SEP]
    assert word_starts(row, *letters).tolist() == [True, True, False, True, True, False, True, True, True, False, True]
    ids = np.tile(row, (2000, 10))                                      # long rows: few need a forced word
    starts = word_starts(ids, *letters)
    inputs, labels = mask_tokens(ids, np.random.default_rng(0), MASK, len(texts), SPECIAL_IDS, PAD, 0.15, starts)
    chosen = labels != IGNORE_INDEX
    masked = inputs == MASK
    for first, rest in ((1, 2), (4, 5), (8, 9)):                       # the two-token words
        assert (chosen[:, first] == chosen[:, rest]).all()              # chosen as a unit (forced ones too)
        assert (masked[:, first] == masked[:, rest]).all()              # masked together, or not at all
    assert 0.13 < chosen[:, ids[0] > UNK].mean() < 0.17                  # about 15% of the text tokens
    # without starts the same draws choose tokens one by one
    _, by_token = mask_tokens(ids, np.random.default_rng(0), MASK, len(texts), SPECIAL_IDS, PAD, 0.15)
    assert ((by_token[:, 1] != IGNORE_INDEX) != (by_token[:, 2] != IGNORE_INDEX)).mean() > 0.1


def test_mlm_batches_draw_every_window_the_corpus_end_included():
    corpus = np.arange(len(SPECIAL_IDS), len(SPECIAL_IDS) + 33)   # 33 tokens, 30 per row: starts 0..3
    inputs, labels, _ = mlm_batches(corpus, 400, 32, np.random.default_rng(0), CLS, SEP, PAD, MASK, VOCAB,
                                    SPECIAL_IDS, short_prob=0.0)
    windows = np.where(labels != IGNORE_INDEX, labels, inputs)[:, 1:-1]    # labels hold what masking hid
    assert set((windows[:, 0] - len(SPECIAL_IDS)).tolist()) == {0, 1, 2, 3}
    one = mlm_batches(corpus[:30], 4, 32, np.random.default_rng(0), CLS, SEP, PAD, MASK, VOCAB, SPECIAL_IDS,
                      short_prob=0.0)                     # exactly one window fits
    np.testing.assert_array_equal(np.where(one[1] != IGNORE_INDEX, one[1], one[0])[:, 1:-1],
                                  np.tile(corpus[:30], (4, 1)))


def test_mlm_batches_layout():
    rng = np.random.default_rng(0)
    corpus = rng.integers(len(SPECIAL_IDS), VOCAB, size=5000)
    inputs, labels, attn = mlm_batches(corpus, 64, 32, rng, CLS, SEP, PAD, MASK, VOCAB,
                                       SPECIAL_IDS, short_prob=0.5)
    assert inputs.shape == labels.shape == attn.shape == (64, 32) and attn.dtype == bool
    lengths = attn.sum(axis=1)
    assert (lengths < 32).any() and (lengths == 32).any()
    assert (inputs[:, 0] == CLS).all()
    assert (inputs[np.arange(64), lengths - 1] == SEP).all()
    np.testing.assert_array_equal(inputs == PAD, ~attn)
    assert not (labels[~attn] != IGNORE_INDEX).any()
    assert ((labels != IGNORE_INDEX).sum(axis=1) >= 1).all()
    rng2 = np.random.default_rng(0)
    rng2.integers(len(SPECIAL_IDS), VOCAB, size=5000)  # replay the draw that built the corpus
    again = mlm_batches(corpus, 64, 32, rng2, CLS, SEP, PAD, MASK, VOCAB, SPECIAL_IDS, short_prob=0.5)
    for a, b in zip((inputs, labels, attn), again):
        np.testing.assert_array_equal(a, b)
