"""Tests for CharTokenizer and BPETokenizer: round trips, determinism, specials, files."""
import functools
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_attn.data import load_shakespeare
from tinygrad_attn.tokenizers import (WORD_PATTERN, BPETokenizer, CharTokenizer, build_tokenizer,
                                      load_tokenizer, tokenizer_from_dict)

SPECIALS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]")


@functools.lru_cache(maxsize=None)
def small_corpus() -> str:
    return load_shakespeare()["tempest"][:40_000]


@functools.lru_cache(maxsize=None)
def trained_bpe() -> BPETokenizer:
    return BPETokenizer.train(small_corpus(), vocab_size=400, specials=SPECIALS)


def naive_bpe(text: str, n_merges: int):
    """Reference trainer: recount every pair from scratch before each merge.

    Returns (merges, final segmentation of each distinct word).
    """
    word_freqs = Counter(WORD_PATTERN.findall(text))
    words = {w: list(w.encode("utf-8")) for w in word_freqs}
    token_bytes = [bytes([b]) for b in range(256)]
    merges = []
    for _ in range(n_merges):
        counts = Counter()
        for w, seq in words.items():
            for pair in zip(seq, seq[1:]):
                counts[pair] += word_freqs[w]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], token_bytes[p[0]], token_bytes[p[1]], p))
        new_id = 256 + len(merges)
        merges.append(best)
        token_bytes.append(token_bytes[best[0]] + token_bytes[best[1]])
        for w, seq in words.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            words[w] = out
    return merges, words


# ---- BPE ----------------------------------------------------------------------------

@given(st.text())
def test_bpe_round_trips_any_unicode(text):
    tok = trained_bpe()
    assert tok.decode(tok.encode(text)) == text


def test_bpe_round_trips_characters_never_seen_in_training():
    tok = trained_bpe()
    text = "naïve café — 日本語 🙂\t\r\n\x00 Ωμέγα"
    ids = tok.encode(text)
    assert all(0 <= i < 256 + len(tok.merges) for i in ids)
    assert tok.decode(ids) == text


def test_bpe_training_is_deterministic():
    first = BPETokenizer.train(small_corpus(), vocab_size=350)
    second = BPETokenizer.train(small_corpus(), vocab_size=350)
    assert first.merges == second.merges
    assert len(first.merges) == 350 - 256 and first.vocab_size == 350


def test_bpe_tie_goes_to_smallest_byte_pair():
    # "cd" comes first in the text, but (a, b) and (c, d) both have count 1: the
    # documented tie-break picks the lexicographically smaller pair of byte strings.
    tok = BPETokenizer.train("cd\nab\n", vocab_size=258)
    assert tok.merges == [(ord("a"), ord("b")), (ord("c"), ord("d"))]


def test_bpe_count_beats_byte_order():
    tok = BPETokenizer.train("zz zz zz ab", vocab_size=257)
    assert tok.merges == [(ord("z"), ord("z"))]


@given(text=st.one_of(st.text(alphabet="ab c\nd", max_size=300), st.text(max_size=120)),
       n_merges=st.integers(0, 40))
def test_incremental_counting_matches_naive_recount(text, n_merges):
    tok = BPETokenizer.train(text, vocab_size=256 + n_merges)
    merges, segmentation = naive_bpe(text, n_merges)
    assert tok.merges == merges
    # encode (merges applied by rank) segments each word exactly as training did
    for word, seq in segmentation.items():
        assert tok.encode(word) == seq


def test_bpe_stops_when_nothing_is_left_to_merge():
    tok = BPETokenizer.train("ab", vocab_size=300)
    assert tok.merges == [(ord("a"), ord("b"))]
    assert tok.vocab_size == 257


def test_bpe_special_tokens_encode_as_single_ids():
    tok = trained_bpe()
    mask = tok.token_to_id("[MASK]")
    assert mask == 256 + len(tok.merges) + SPECIALS.index("[MASK]")
    ids = tok.encode("the [MASK] sat")
    assert ids.count(mask) == 1
    assert tok.decode(ids) == "the [MASK] sat"
    assert tok.decode(ids, skip_specials=True) == "the  sat"
    assert tok.id_to_token(mask) == "[MASK]"
    assert tok.special_ids == {s: 256 + len(tok.merges) + i for i, s in enumerate(SPECIALS)}
    assert tok.vocab_size == 400


def test_bpe_training_never_merges_across_special_tokens():
    tok = BPETokenizer.train("[MASK]" * 50 + " hello", vocab_size=300, specials=("[MASK]",))
    learned = {tok.decode([256 + i]) for i in range(len(tok.merges))}
    assert not any("[" in piece or "]" in piece for piece in learned)


def test_bpe_decode_of_split_multibyte_char_uses_replacement():
    tok = BPETokenizer()
    first_byte = "é".encode("utf-8")[0]
    assert tok.decode([first_byte]) == "\ufffd"


def test_tokens_returns_the_pieces_and_bytes_of_a_split_character_read_as_hex():
    tok = trained_bpe()
    pieces = tok.tokens("the [MASK] sat")
    assert len(pieces) == len(tok.encode("the [MASK] sat")) and "[MASK]" in pieces
    assert "".join(pieces) == "the [MASK] sat"
    # a byte-only tokenizer: "é" is two bytes, 🙂 four; each lone byte reads <0xHH>, never U+FFFD
    raw = BPETokenizer()
    assert raw.tokens("café") == ["c", "a", "f", "<0xC3>", "<0xA9>"]
    assert raw.tokens("🙂") == ["<0xF0>", "<0x9F>", "<0x99>", "<0x82>"]
    # once the two bytes of "é" are merged, the piece is the character itself
    merged = BPETokenizer.train("é " * 20 + "café " * 20, vocab_size=262)
    assert "é" in merged.tokens("é") and all("\ufffd" not in p for p in merged.tokens("café 🙂"))
    with pytest.raises(ValueError, match="id_to_token: id 10000 out of range"):
        tok.id_to_token(10_000)
    assert CharTokenizer.train("abc", SPECIALS).tokens("ab[MASK]c") == ["a", "b", "[MASK]", "c"]


def test_bpe_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("abc", vocab_size=258, specials=SPECIALS)
    with pytest.raises(ValueError, match="out of range"):
        trained_bpe().decode([10_000])
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer(specials=("[PAD]", "[PAD]"))


def test_bpe_save_load_round_trip(tmp_path):
    tok = trained_bpe()
    path = tmp_path / "tok.json"
    tok.save(path)
    assert json.loads(path.read_text())["type"] == "bpe"
    for loaded in (BPETokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(tok.to_dict())):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.merges == tok.merges and loaded.specials == tok.specials
        sample = small_corpus()[:2000] + " [CLS] x"
        assert loaded.encode(sample) == tok.encode(sample)


# ---- Char ---------------------------------------------------------------------------

@given(st.text(alphabet="abc \n[]MASK", max_size=50))
def test_char_round_trip(text):
    tok = CharTokenizer.train("abc \n[]MASK", specials=SPECIALS)
    assert tok.decode(tok.encode(text)) == text


def test_char_specials_come_first_and_match_whole():
    tok = CharTokenizer.train("hello world", specials=SPECIALS)
    assert [tok.token_to_id(s) for s in SPECIALS] == list(range(len(SPECIALS)))
    assert tok.vocab_size == len(SPECIALS) + len(set("hello world"))
    ids = tok.encode("hello [MASK]")
    assert ids[-1] == SPECIALS.index("[MASK]") and len(ids) == 7
    assert tok.decode(ids, skip_specials=True) == "hello "


def test_char_unseen_maps_to_unk():
    tok = CharTokenizer.train("abc", specials=("[UNK]",))
    assert tok.encode("az") == [tok.token_to_id("a"), tok.token_to_id("[UNK]")]


def test_char_unseen_without_unk_names_the_character():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("abz")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([3])


def test_char_save_load_round_trip(tmp_path):
    tok = CharTokenizer.train(small_corpus(), specials=SPECIALS)
    path = tmp_path / "char.json"
    tok.save(path)
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.itos == tok.itos
    with pytest.raises(ValueError, match="'char'"):
        CharTokenizer.from_dict(trained_bpe().to_dict())


def test_build_tokenizer():
    assert isinstance(build_tokenizer("char", "abc"), CharTokenizer)
    bpe = build_tokenizer("bpe", small_corpus()[:5000], vocab_size=270, specials=("[PAD]",))
    assert isinstance(bpe, BPETokenizer) and bpe.vocab_size == 270
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer("bpe", "abc")
    with pytest.raises(ValueError, match="unknown kind"):
        build_tokenizer("wordpiece", "abc")


def test_text_without_whitespace_is_cut_into_bounded_words():
    """1 MB of ACGT was one word: BPE took minutes. Words are now at most MAX_WORD characters."""
    from tinygrad_attn.tokenizers import MAX_WORD, WORD_PATTERN
    rng = np.random.default_rng(0)
    dna = "".join(rng.choice(list("ACGT"), 20_000))
    words = WORD_PATTERN.findall(dna + " " + "x" * 200 + " " * 100 + "!" * 70)
    assert max(map(len, words)) <= MAX_WORD + 1 and "".join(words) == dna + " " + "x" * 200 + " " * 100 + "!" * 70
    tok = BPETokenizer.train(dna, 300)
    assert tok.decode(tok.encode(dna)) == dna and len(tok.encode(dna)) > 20_000 // MAX_WORD


def test_one_repeated_character_gives_a_working_tokenizer():
    text = "a" * 5000
    tok = BPETokenizer.train(text, 300)
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) >= 5000 // 64


def test_readme_bpe_weaknesses_hold_for_the_trained_tokenizer():
    """README states these splits of the BPE-512 tokenizer `tinygrad-attn train mlm` trains; they must stay true."""
    from tinygrad_attn.models.cli import load_corpus
    from tinygrad_attn.models.config import get_preset
    from tinygrad_attn.models.kinds import KINDS
    config = get_preset("mlm", "small").model
    tok = build_tokenizer("bpe", load_corpus("shakespeare").chunks("train"), config.bpe_vocab_size,
                          KINDS["mlm"].specials(config))
    assert tok.tokens("the") == ["t", "he"] and tok.tokens(" the") == [" the"]
    assert tok.tokens("The") == ["The"] and tok.tokens(" The") == [" ", "The"]
    assert tok.tokens("love") == ["l", "o", "ve"] and tok.tokens(" love") == [" love"]
    assert len(tok.tokens("1234567")) == 7 and tok.tokens(" 2026") == [" ", "2", "0", "2", "6"]
    assert [len(tok.tokens(w)) for w in ("happy", "Happy", "HAPPY", " night", " Night", " NIGHT")] == [4, 5, 5, 2, 3, 6]
    assert tok.tokens("café") == ["c", "a", "f", "<0xC3>", "<0xA9>"]
    assert len(tok.tokens("🙂")) == 4 and len(tok.tokens("日本")) == 6
    assert tok.tokens(" Rosencrantz") == [" ", "R", "o", "s", "en", "c", "r", "ant", "z"]
    assert len(tok.tokens(" Schwarzenegger")) == 10
