"""Large text files without large memory: read in chunks, tokenized chunk by chunk into one
compact integer array on disk, memory-mapped for training.

    text = TextFile("corpus.txt")                 # one pass: checks UTF-8, counts characters
    tok = CharTokenizer.train(text.chunks("train"))
    ids = encode_to_file(tok, text.chunks("train"), "runs/x/tokens/train.u16")   # np.memmap, uint16

A 200 MB file read whole becomes a 200 MB string, a list of 200 M Python ints (1.6 GB of
pointers alone) and an int64 copy: 16-18x the file. Here the text is never whole in memory
and the ids take 2 bytes each (4 when the vocabulary passes 65,536); the batch functions
index the memory map directly. The split into training and held-out text is the one of
`split_text`: the last `eval_fraction` of the characters.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import DataError
from ..files import atomic_writer
from .text import read_text_chunks

CHUNK_CHARS = 1 << 20    # ~1 M characters per chunk: big enough to be fast, small next to any corpus
_BOUNDARY = re.compile(r"\S\s")


def _last_word_boundary(block: str) -> int:
    """The last i where block[i] is whitespace after a non-space: no pre-tokenizer word spans it
    (a space starts the next word), so BPE counts chunk by chunk as over the whole text.
    Text without whitespace is cut at the end of the block (it moves at most one capped word)."""
    for start in (max(0, len(block) - 4096), 0):
        last = None
        for last in _BOUNDARY.finditer(block, start):
            pass
        if last is not None:
            return last.start() + 1
    return len(block)


def token_dtype(vocab_size: int):
    """The smallest unsigned dtype that holds every id."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


class TextFile:
    """A UTF-8 text file read in chunks cut at word boundaries (so no word is split across chunks)."""

    def __init__(self, path, eval_fraction: float = 0.1, chunk_chars: int = CHUNK_CHARS):
        self.path, self.chunk_chars = os.fspath(path), chunk_chars
        name = self.path
        n_chars, blank = 0, True
        for chunk in self._read():
            n_chars += len(chunk)
            blank = blank and not chunk.strip()
        if blank:
            raise DataError(f"{name!r} is empty; it needs some text to train on")
        self.n_chars = n_chars
        self.cut = int(n_chars * (1.0 - eval_fraction))
        if self.cut == 0 or self.cut == n_chars:
            raise DataError(f"{name!r} is too short: {n_chars} characters cannot be split into training and "
                            f"held-out text")

    def _read(self) -> Iterator[str]:
        carry = ""
        try:
            for block in read_text_chunks(self.path, self.chunk_chars):
                block = carry + block
                cut = _last_word_boundary(block)
                carry = block[cut:]
                yield block[:cut]
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {self.path!r}") from None
        if carry:
            yield carry

    def chunks(self, part: str) -> Iterator[str]:
        """The chunks of the "train" part (characters before the cut) or the "eval" part (after it)."""
        if part not in ("train", "eval"):
            raise ValueError(f"TextFile.chunks: part must be 'train' or 'eval', got {part!r}")
        position = 0
        for chunk in self._read():
            start, end = position, position + len(chunk)
            position = end
            lo, hi = (0, self.cut) if part == "train" else (self.cut, self.n_chars)
            if end <= lo or start >= hi:
                continue
            yield chunk[max(lo - start, 0):min(hi, end) - start]


class SplitText:
    """Training and held-out text already in memory (the bundled plays), with TextFile's `chunks`."""

    def __init__(self, train: str, held_out: str):
        self.train, self.held_out = train, held_out

    def chunks(self, part: str) -> Iterator[str]:
        yield self.train if part == "train" else self.held_out


def _encoded(tokenizer, chunks: Iterable[str], dtype) -> Iterator[np.ndarray]:
    for chunk in chunks:
        yield np.asarray(tokenizer.encode(chunk), dtype=dtype)


def encode_chunks(tokenizer, chunks: Iterable[str]) -> np.ndarray:
    """All ids of `chunks` in one compact in-memory array (for held-out text and small corpora)."""
    dtype = token_dtype(tokenizer.vocab_size)
    parts = list(_encoded(tokenizer, chunks, dtype))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def encode_to_file(tokenizer, chunks: Iterable[str], file) -> np.ndarray:
    """Encode `chunks` into the raw array file `file` (written whole, then renamed) and memory-map it read-only."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    count = 0
    with atomic_writer(file) as f:
        for ids in _encoded(tokenizer, chunks, dtype):
            f.write(ids.tobytes())
            count += len(ids)
    return load_token_file(file, dtype) if count else np.zeros(0, dtype=dtype)


def load_token_file(file, dtype) -> np.ndarray:
    """A token file written by `encode_to_file`, memory-mapped read-only."""
    if os.path.getsize(file) == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(file, dtype=dtype, mode="r")
