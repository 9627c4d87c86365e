"""JSON from files a user or an attacker can change: a size limit and a nesting limit, checked first.

    meta = loads_json(data, what="checkpoint.json", error=CheckpointError)   # data: bytes or str

Python's json parser recurses once per level of nesting, so `[[[[...]]]]` 200,000 deep ends in
RecursionError, and a huge document is parsed whole before anything looks at it. Here the size
is checked first, then the depth by a scan of the brackets outside strings (no recursion: a
running sum), and only then does json.loads run. Every failure is `error` (a TinygradAttnError
subclass the caller chooses) naming `what`.
"""
from __future__ import annotations

import json
import re

import numpy as np

from .errors import TinygradAttnError, UnsafeFileError

MAX_JSON_BYTES = 64 * 2**20   # a 50,000-merge tokenizer.json is about 1 MB; a checkpoint.json is smaller
MAX_JSON_DEPTH = 64           # our files nest at most 6 deep; json's recursion fails near 1,000

# A JSON string: a quote, then runs of ordinary characters or escapes (unrolled, so no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENS, _CLOSES = b"[{", b"]}"


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in `data`, counting only brackets outside strings."""
    brackets = np.frombuffer(_STRING.sub(b"", data).translate(None, delete=bytes(
        b for b in range(256) if b not in _OPENS + _CLOSES)), dtype=np.uint8)
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == _OPENS[0]) | (brackets == _OPENS[1]), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def loads_json(data: bytes | str, what: str, error: type[TinygradAttnError] = UnsafeFileError,
               max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """json.loads(data) after checking its size and depth; `error(message naming what)` on any failure."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise error(f"{what} is {len(raw):,} bytes, more than the {max_bytes:,} this reader accepts; "
                    f"it is not a file we wrote")
    depth = json_depth(raw)
    if depth > max_depth:
        raise error(f"{what} nests JSON {depth:,} levels deep, more than the {max_depth} this reader accepts; "
                    f"it is not a file we wrote")
    try:
        return json.loads(data if isinstance(data, str) else raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{what} is not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x}); "
                    f"it is corrupted, or not the file expected") from None
    except (ValueError, RecursionError) as e:  # RecursionError: only if the depth scan were wrong
        raise error(f"{what} is not valid JSON (truncated or corrupted?): {e}") from None
