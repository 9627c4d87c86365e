"""Large --data files: read in chunks, split like split_text, tokenized into a compact memory-mapped array."""
import numpy as np
import pytest

from tinygrad_attn import DataError
from tinygrad_attn.batching import _as_ids, lm_batches, mlm_batches
from tinygrad_attn.data import load_shakespeare, load_text_file, split_text
from tinygrad_attn.data.stream import TextFile, encode_chunks, encode_to_file, token_dtype
from tinygrad_attn.tokenizers import BPETokenizer, CharTokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "text.txt"
    text = load_shakespeare()["tempest"][:30_000] + "\r\nnot the end " + "é" * 50 + "\n\ntail words"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("chunk_chars", [7, 1000, 1 << 20])
def test_chunks_split_exactly_like_split_text(corpus, chunk_chars):
    whole_train, whole_eval = split_text(load_text_file(corpus))
    text = TextFile(corpus, chunk_chars=chunk_chars)
    train, held_out = list(text.chunks("train")), list(text.chunks("eval"))
    assert "".join(train) == whole_train and "".join(held_out) == whole_eval
    if chunk_chars == 1000:
        assert len(train) > 10 and all(len(c) < 2100 for c in train)   # never the whole text at once


def test_tokenizers_train_on_chunks_as_on_the_whole_text(corpus):
    text = TextFile(corpus, chunk_chars=1000)
    whole = "".join(text.chunks("train"))
    assert CharTokenizer.train(text.chunks("train")).to_dict() == CharTokenizer.train(whole).to_dict()
    assert BPETokenizer.train(text.chunks("train"), 300).merges == BPETokenizer.train(whole, 300).merges


def test_ids_are_a_compact_memory_map_that_batches_index_without_copying(corpus, tmp_path):
    text = TextFile(corpus, chunk_chars=1000)
    tok = CharTokenizer.train(text.chunks("train"), specials=("[UNK]",))
    ids = encode_to_file(tok, text.chunks("train"), tmp_path / "tokens" / "train.bin")
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16
    assert ids.tolist() == tok.encode("".join(text.chunks("train")))
    assert (tmp_path / "tokens" / "train.bin").stat().st_size == 2 * len(ids)
    assert np.shares_memory(_as_ids(ids, "t"), ids)          # no int64 copy of the whole corpus
    x, y = lm_batches(ids, 4, 16, np.random.default_rng(0))
    assert x.dtype == np.int64 and x.shape == (4, 16)
    held_out = encode_chunks(tok, text.chunks("eval"))
    assert held_out.dtype == np.uint16 and held_out.tolist() == tok.encode("".join(text.chunks("eval")))
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32


def test_mlm_batches_take_a_uint16_corpus():
    ids = np.arange(100, dtype=np.uint16) % 20 + 5
    inputs, labels, mask = mlm_batches(ids, 3, 12, np.random.default_rng(0), 0, 1, 2, 3, 25, (0, 1, 2, 3))
    assert inputs.dtype == np.int64 and inputs.shape == (3, 12) and (labels[labels != -100] >= 5).all()


@pytest.mark.parametrize("content, why", [(b"", "empty"), (b"\xff\xfe text", "not UTF-8"), (b"a", "too short")])
def test_bad_files_are_data_errors_naming_the_file(tmp_path, content, why):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=why) as info:
        TextFile(path)
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match="directory"):
        TextFile(tmp_path)
