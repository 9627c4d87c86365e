"""The bundled Shakespeare corpus and plain-text loading, split into train and eval text.

Batching lives in `tinygrad_attn.batching`; this module only produces strings.
"""
import gzip
import importlib.resources
import os
import random
import re

from ..errors import DataError
from .text import read_text_chunks

CORPUS_FILE = "shakespeare.txt.gz"
# Each play in the bundle starts with a line `=== <name> ===` (see scripts/build_corpus.py).
_SEPARATOR = re.compile(r"^=== (.+) ===\n", re.MULTILINE)


def load_shakespeare() -> dict[str, str]:
    """Return the 42 bundled works (37 plays, the Sonnets, 4 poems) as {name: text}, sorted by name.

    Names are the source file stems without the `_gut` suffix, e.g. "lear", "tempest".
    """
    raw = importlib.resources.files(__name__).joinpath(CORPUS_FILE).read_bytes()
    pieces = _SEPARATOR.split(gzip.decompress(raw).decode("utf-8"))
    # split() gives ["", name1, body1, name2, body2, ...]; each body ends with the
    # newline the builder added before the next separator.
    return {name: body[:-1] for name, body in zip(pieces[1::2], pieces[2::2])}


def corpus_splits(texts: dict[str, str], n_eval_plays: int = 2, seed: int = 0) -> tuple[str, str]:
    """Hold out whole plays for evaluation; return (train_text, eval_text).

    The held-out plays are a seeded sample of the sorted names, so the split is the
    same on every run and machine. Plays are joined with a blank line.
    """
    if not 0 < n_eval_plays < len(texts):
        raise ValueError(f"corpus_splits: n_eval_plays={n_eval_plays} must be between 1 and "
                         f"{len(texts) - 1} for a corpus of {len(texts)} texts")
    names = sorted(texts)
    held_out = set(random.Random(seed).sample(names, n_eval_plays))
    train = "\n\n".join(texts[n] for n in names if n not in held_out)
    evaluation = "\n\n".join(texts[n] for n in names if n in held_out)
    return train, evaluation


def load_text_file(path: str | os.PathLike) -> str:
    """Read a user's UTF-8 text file (for `--data PATH`); DataError naming the file if it is not a
    regular file, unreadable, not UTF-8 (UTF-16, binary) or empty (FileNotFoundError if it does not exist)."""
    name = os.fspath(path)
    try:
        text = "".join(read_text_chunks(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"load_text_file: no such file: {name!r}") from None
    except DataError as e:
        raise DataError(f"load_text_file: {e}") from None
    if not text.strip():
        raise DataError(f"load_text_file: {name!r} is empty; it needs some text to train on")
    return text


def split_text(text: str, eval_fraction: float = 0.1) -> tuple[str, str]:
    """Split one text into (train, eval), holding out the last `eval_fraction` of characters.

    Used for a user's file, which has no natural document boundaries.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"split_text: eval_fraction={eval_fraction} must be in (0, 1)")
    cut = int(len(text) * (1.0 - eval_fraction))
    if cut == 0 or cut == len(text):
        raise DataError(f"split_text: text of {len(text)} characters is too short to split "
                         f"with eval_fraction={eval_fraction}")
    return text[:cut], text[cut:]
