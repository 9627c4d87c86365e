"""Tokenizers: text <-> lists of integer ids. A character tokenizer and a byte-level BPE.

Both take special tokens (e.g. "[PAD]", "[MASK]", "[CLS]", "[SEP]", "[UNK]") as a tuple
of names. A special token that appears verbatim in text given to `encode` becomes its
single id, so "the [MASK] sat" carries one mask id.

Where the special ids go:
  - CharTokenizer: specials first (ids 0..k-1, in the order given), then the characters.
  - BPETokenizer: bytes 0..255 (id == byte value), then merges 256.., then the specials.

Known weaknesses of BPE, and what we do about them:
  - Segmentation ignores morphology: merges follow frequency, not meaning, so a word may
    split as "unh"+"appy" rather than "un"+"happy". Nothing here fixes that.
  - Segmentation depends on the training corpus: a tokenizer trained on Shakespeare splits
    modern words into many pieces, and retraining on other text changes every id. Save the
    tokenizer beside the model weights and load it back with the model.
  - Ties in merge order: several pairs often share the highest count, and a trainer that
    breaks ties by dict or hash order gives different vocabularies from run to run. Ours
    breaks ties deterministically: highest count, then the lexicographically smallest pair
    of token byte strings (bytes(left), bytes(right)), then the smallest pair of ids.
"""
import hashlib
import heapq
import json
import os
import re
from collections import Counter
from typing import Iterable

from .errors import TokenizerError
from .files import atomic_write, read_regular
from .safe_json import MAX_JSON_BYTES, loads_json

# Pre-tokenizer: a word keeps the single space before it (as in GPT-2), digits and
# punctuation form their own words, whitespace runs stand alone. Every character matches
# one of the alternatives, so joining the pieces gives back the text. A word is at most
# MAX_WORD characters: text without whitespace (DNA, minified code) would otherwise be one
# huge word, and merging inside it costs time quadratic in its length.
MAX_WORD = 64
WORD_PATTERN = re.compile(rf" ?[A-Za-z]{{1,{MAX_WORD}}}| ?[0-9]{{1,{MAX_WORD}}}| ?[^\sA-Za-z0-9]{{1,{MAX_WORD}}}"
                          rf"|\s{{1,{MAX_WORD}}}")
N_BYTES = 256
_ENCODE_CACHE_LIMIT = 200_000  # words; bounds memory when encoding huge, varied text


def _chunks(text):
    return [text] if isinstance(text, str) else text


def _special_splitter(specials):
    """Regex that splits text around special tokens (longest first), keeping them as pieces."""
    if not specials:
        return None
    alternatives = sorted(specials, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(s) for s in alternatives) + ")")


def _check_specials(specials):
    specials = tuple(specials)
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct, got {specials}")
    if any(not isinstance(s, str) or not s for s in specials):
        raise ValueError(f"special tokens must be non-empty strings, got {specials}")
    return specials


class _Tokenizer:
    """Shared plumbing: special-token lookup, JSON save/load."""

    kind = ""

    def _split_specials(self, text):
        """Yield (piece, is_special) so special tokens are matched as whole strings."""
        if self._splitter is None:
            yield text, False
            return
        for i, piece in enumerate(self._splitter.split(text)):
            if piece:
                yield piece, i % 2 == 1

    def token_to_id(self, token: str) -> int:
        """Id of a special token (e.g. "[MASK]"), or of a single known character/byte token."""
        if token in self._special_ids:
            return self._special_ids[token]
        ids = self.encode(token)
        if len(ids) != 1 or self.decode(ids) != token:  # second test: a char that became [UNK]
            raise KeyError(f"{token!r} is not a single token of this {self.kind} tokenizer")
        return ids[0]

    def id_to_token(self, token_id: int) -> str:
        """The string for one id (special name, character, or decoded bytes)."""
        return self.decode([token_id])

    def tokens(self, text: str) -> list[str]:
        """The pieces `encode` cuts `text` into, one readable string per id (see `id_to_token`)."""
        return [self.id_to_token(i) for i in self.encode(text)]

    @property
    def special_ids(self) -> dict[str, int]:
        """{special token name: id}."""
        return dict(self._special_ids)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (no pickle); the file is replaced atomically."""
        atomic_write(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a tokenizer written by `save`; TokenizerError naming the file if it does not parse."""
        return _from_file(path, cls.from_dict)

    def fingerprint(self) -> str:
        """sha256 of the tokenizer's content: equal for equal vocabularies, whatever the file's formatting."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @staticmethod
    def _check_kind(data, kind):
        if data.get("type") != kind:
            raise ValueError(f"expected a {kind!r} tokenizer dict, got type={data.get('type')!r}")


class CharTokenizer(_Tokenizer):
    """One id per character. Specials get ids 0..k-1, characters follow in sorted order.

    A character not in the vocabulary becomes "[UNK]" if that special exists; otherwise
    `encode` raises ValueError naming the character.
    """

    kind = "char"

    def __init__(self, chars, specials=()):
        self.specials = _check_specials(specials)
        chars = list(chars)
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer: chars must be distinct single characters")
        self.itos = list(self.specials) + chars
        self._char_ids = {c: i + len(self.specials) for i, c in enumerate(chars)}
        self._special_ids = {s: i for i, s in enumerate(self.specials)}
        self._splitter = _special_splitter(self.specials)
        self._unk = self._special_ids.get("[UNK]")

    @classmethod
    def train(cls, text: str | Iterable[str], specials=()) -> "CharTokenizer":
        """Vocabulary = the sorted set of characters of `text` (a string or an iterable of chunks), after the specials."""
        chars = set()
        for chunk in _chunks(text):
            chars.update(chunk)
        return cls(sorted(chars), specials)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special tokens in the text map to their ids."""
        ids = []
        for piece, is_special in self._split_specials(text):
            if is_special:
                ids.append(self._special_ids[piece])
                continue
            for ch in piece:
                token = self._char_ids.get(ch, self._unk)
                if token is None:
                    raise ValueError(f"CharTokenizer.encode: character {ch!r} (U+{ord(ch):04X}) is not in "
                                     f"the vocabulary and there is no [UNK] special token")
                ids.append(token)
        return ids

    def decode(self, ids, skip_specials: bool = False) -> str:
        """Ids -> text; specials are written as their names unless `skip_specials`."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"CharTokenizer.decode: id {i} out of range [0, {len(self.itos)})")
            if not (skip_specials and i < len(self.specials)):
                out.append(self.itos[i])
        return "".join(out)

    def to_dict(self) -> dict:
        """JSON-ready description; `from_dict` rebuilds an identical tokenizer."""
        return {"type": self.kind, "specials": list(self.specials), "chars": self.itos[len(self.specials):]}

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        cls._check_kind(data, cls.kind)
        return cls(data["chars"], data["specials"])


def _merge_word(word, left, right, new_id):
    """Replace every adjacent (left, right) in `word`, scanning left to right."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == left and word[i + 1] == right:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _learn_merges(words, freqs, n_merges):
    """Learn up to `n_merges` merges from words (lists of byte ids) with frequencies.

    Pair counts are updated incrementally: merging a pair touches only the words that
    contain it (found through a pair -> word-index map). The best pair comes from a heap
    with lazy deletion: an entry is stale when its count no longer matches the dict.
    Order: highest count, then smallest (bytes(left), bytes(right)), then smallest ids.
    """
    token_bytes = [bytes([b]) for b in range(N_BYTES)]
    counts, where = Counter(), {}
    for idx, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            counts[pair] += freq
            where.setdefault(pair, set()).add(idx)

    def entry(pair):
        return (-counts[pair], token_bytes[pair[0]], token_bytes[pair[1]], pair)

    heap = [entry(p) for p in counts]
    heapq.heapify(heap)
    merges = []
    while heap and len(merges) < n_merges:
        neg_count, _, _, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg_count:
            continue  # stale: the count changed after this entry was pushed
        left, right = pair
        new_id = N_BYTES + len(merges)
        merges.append(pair)
        token_bytes.append(token_bytes[left] + token_bytes[right])
        changed = set()
        for idx in where.pop(pair):
            old, freq = words[idx], freqs[idx]
            new = _merge_word(old, left, right, new_id)
            old_pairs, new_pairs = set(zip(old, old[1:])), set(zip(new, new[1:]))
            for p in zip(old, old[1:]):
                counts[p] -= freq
            for p in zip(new, new[1:]):
                counts[p] += freq
            for p in old_pairs - new_pairs:
                if p in where:
                    where[p].discard(idx)
            for p in new_pairs:
                where.setdefault(p, set()).add(idx)
            changed |= old_pairs | new_pairs
            words[idx] = new
        for p in changed:
            if counts[p] > 0:
                heapq.heappush(heap, entry(p))
            else:
                del counts[p]
                where.pop(p, None)
    return merges


def _readable_bytes(data: bytes) -> str:
    """UTF-8 text, with every byte that does not decode written as <0xHH>."""
    out = []
    while data:
        try:
            out.append(data.decode("utf-8"))
            break
        except UnicodeDecodeError as e:
            out.append(data[:e.start].decode("utf-8"))
            out.append("".join(f"<0x{b:02X}>" for b in data[e.start:e.end]))
            data = data[e.end:]
    return "".join(out)


MAX_TOKEN_BYTES = 1024  # BPE merges words, not paragraphs: the longest token trained here is ~20 bytes


class BPETokenizer(_Tokenizer):
    """Byte-level BPE: ids 0..255 are the bytes, 256.. the learned merges, then the specials.

    Byte fallback: text is encoded as UTF-8 and every byte has an id, so ANY unicode text
    (characters never seen in training included) encodes, and decode(encode(t)) == t
    exactly. There is no [UNK]. Decoding an arbitrary id sequence may cut a multibyte
    character in half; those bytes decode to U+FFFD (errors="replace").
    """

    kind = "bpe"

    def __init__(self, merges=(), specials=()):
        self.specials = _check_specials(specials)
        self.merges = [(int(a), int(b)) for a, b in merges]
        # lengths first: chained merges of a crafted file (each token the last one plus a byte) would
        # otherwise build gigabytes of token bytes before anything else is checked
        lengths = [1] * N_BYTES
        for new_id, (a, b) in enumerate(self.merges, start=N_BYTES):
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"BPETokenizer: merge {new_id - N_BYTES} ({a}, {b}) refers to an unknown id")
            lengths.append(lengths[a] + lengths[b])
            if lengths[-1] > MAX_TOKEN_BYTES:
                raise ValueError(f"BPETokenizer: merge {new_id - N_BYTES} makes a token of {lengths[-1]:,} bytes, "
                                 f"more than the {MAX_TOKEN_BYTES:,} a trained tokenizer ever needs")
        self._token_bytes = [bytes([b]) for b in range(N_BYTES)]
        for a, b in self.merges:
            self._token_bytes.append(self._token_bytes[a] + self._token_bytes[b])
        self._ranks = {pair: new_id for new_id, pair in enumerate(self.merges, start=N_BYTES)}
        first_special = N_BYTES + len(self.merges)
        self._special_ids = {s: first_special + i for i, s in enumerate(self.specials)}
        self._special_names = {i: s for s, i in self._special_ids.items()}
        self._splitter = _special_splitter(self.specials)
        self._cache = {}

    @classmethod
    def train(cls, text: str | Iterable[str], vocab_size: int, specials=()) -> "BPETokenizer":
        """Learn merges until vocab_size = 256 bytes + merges + len(specials). `text`: a string or
        an iterable of chunks (cut at whitespace, as tinygrad_attn.data.stream makes them).

        Stops early (smaller vocabulary) when no adjacent pair is left to merge. Special
        tokens in `text` are cut out before counting, so no merge spans them.
        """
        specials = _check_specials(specials)
        n_merges = vocab_size - N_BYTES - len(specials)
        if n_merges < 0:
            raise ValueError(f"BPETokenizer.train: vocab_size={vocab_size} is below the minimum "
                             f"{N_BYTES + len(specials)} (256 bytes + {len(specials)} specials)")
        splitter = _special_splitter(specials)
        word_counts = Counter()
        for chunk in _chunks(text):   # a chunk at a time: a large file never becomes one list of words
            for piece in (splitter.split(chunk)[::2] if splitter else [chunk]):
                word_counts.update(WORD_PATTERN.findall(piece))
        words = [list(w.encode("utf-8")) for w in word_counts]
        merges = _learn_merges(words, list(word_counts.values()), n_merges)
        return cls(merges, specials)

    @property
    def vocab_size(self) -> int:
        return N_BYTES + len(self.merges) + len(self.specials)

    def _encode_word(self, word: str) -> list[int]:
        """Apply merges to one pre-tokenized word, lowest rank (earliest learned) first."""
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        ids = list(word.encode("utf-8"))
        while len(ids) > 1:
            ranked = [(self._ranks.get(p), p) for p in zip(ids, ids[1:])]
            best = min((r for r in ranked if r[0] is not None), default=None)
            if best is None:
                break
            rank, (a, b) = best
            ids = _merge_word(ids, a, b, rank)
        if len(self._cache) >= _ENCODE_CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Text -> ids. Special tokens in the text map to their ids; the rest is byte-level."""
        out = []
        for piece, is_special in self._split_specials(text):
            if is_special:
                out.append(self._special_ids[piece])
            else:
                for word in WORD_PATTERN.findall(piece):
                    out.extend(self._encode_word(word))
        return out

    def id_to_token(self, token_id: int) -> str:
        """One id, readable: a special's name, the token's text, or `<0xC3>` for each byte that is
        only part of a UTF-8 character (so "é" split in two shows as "<0xC3><0xA9>", not "\ufffd\ufffd")."""
        token_id = int(token_id)
        if token_id in self._special_names:
            return self._special_names[token_id]
        if not 0 <= token_id < len(self._token_bytes):
            raise ValueError(f"BPETokenizer.id_to_token: id {token_id} out of range [0, {self.vocab_size})")
        return _readable_bytes(self._token_bytes[token_id])

    def decode(self, ids, skip_specials: bool = False) -> str:
        """Ids -> text: join the bytes, decode UTF-8 with errors="replace"."""
        parts = []
        n_tokens = len(self._token_bytes)
        for i in ids:
            i = int(i)
            if 0 <= i < n_tokens:
                parts.append(self._token_bytes[i])
            elif i in self._special_names:
                if not skip_specials:
                    parts.append(self._special_names[i].encode("utf-8"))
            else:
                raise ValueError(f"BPETokenizer.decode: id {i} out of range [0, {self.vocab_size})")
        return b"".join(parts).decode("utf-8", errors="replace")

    def to_dict(self) -> dict:
        """JSON-ready description (merges as [left, right] id lists, in rank order)."""
        return {"type": self.kind, "specials": list(self.specials), "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_dict(cls, data: dict) -> "BPETokenizer":
        cls._check_kind(data, cls.kind)
        return cls(data["merges"], data["specials"])


_KINDS = {"char": CharTokenizer, "bpe": BPETokenizer}


def build_tokenizer(kind: str, text: str, vocab_size: int | None = None, specials=()):
    """Train a tokenizer of `kind` ("char" or "bpe") on `text`.

    `vocab_size` is required for "bpe" (it counts bytes, merges and specials) and ignored
    for "char", whose vocabulary is the characters of the text.
    """
    if kind == "char":
        return CharTokenizer.train(text, specials)
    if kind == "bpe":
        if vocab_size is None:
            raise ValueError("build_tokenizer: kind='bpe' needs vocab_size")
        return BPETokenizer.train(text, vocab_size, specials)
    raise ValueError(f"build_tokenizer: unknown kind {kind!r}; expected one of {sorted(_KINDS)}")


def tokenizer_from_dict(data: dict):
    """Rebuild a Char or BPE tokenizer from `to_dict()` output, choosing by its "type"."""
    kind = data.get("type")
    if kind not in _KINDS:
        raise ValueError(f"tokenizer_from_dict: unknown type {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind].from_dict(data)


def _from_file(path, build):
    """build(dict) from the JSON file at `path`, every failure a TokenizerError that names the file."""
    name = os.fspath(path)
    try:
        raw = read_regular(path, "tokenizer file", TokenizerError, max_bytes=MAX_JSON_BYTES)
    except OSError as e:  # missing, or no permission
        raise TokenizerError(f"tokenizer file {name}: cannot read it: {e.strerror or e}") from None
    data = loads_json(raw, f"tokenizer file {name}", TokenizerError)
    if not isinstance(data, dict):
        raise TokenizerError(f"tokenizer file {name} holds a JSON {type(data).__name__}, not a tokenizer")
    try:
        return build(data)
    except TokenizerError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise TokenizerError(f"tokenizer file {name} does not describe a valid tokenizer: {e!r}") from None


def load_tokenizer(path: str | os.PathLike, vocab_size: int | None = None):
    """Read any tokenizer saved with `.save(path)`; TokenizerError naming the file if it does not parse.

    With `vocab_size` (the checkpoint's), a file that would give another size is refused from its
    counts alone, before any merge or character table is built."""
    def build(data):
        if vocab_size is not None:
            size = stored_vocab_size(data)
            if size is not None and size != vocab_size:
                raise TokenizerError(f"{os.fspath(path)} does not match the checkpoint: it describes {size:,} "
                                     f"tokens, and the model was trained with {vocab_size:,}; put back the "
                                     f"tokenizer.json of this run")
        return tokenizer_from_dict(data)
    return _from_file(path, build)


def stored_vocab_size(data: dict) -> int | None:
    """The vocabulary size a tokenizer dict describes, counted without building it (None if it cannot tell)."""
    specials = data.get("specials", ())
    table = data.get("merges") if data.get("type") == "bpe" else data.get("chars")
    if not isinstance(table, (list, str)) or not isinstance(specials, (list, tuple)):
        return None
    return (N_BYTES if data.get("type") == "bpe" else 0) + len(table) + len(specials)
