"""A user's text file read as UTF-8, in chunks, with a clear error for everything else.

    for chunk in read_text_chunks("corpus.txt", chunk_bytes=1 << 20): ...   # str chunks

Refused with DataError naming the file: anything but a regular file (a directory, a FIFO,
/dev/zero), UTF-16 or UTF-32 (by its byte-order mark, or, without one, by its NUL bytes),
other binary data (a NUL byte), and bytes that are not UTF-8 (with the byte offset). A
missing file raises FileNotFoundError, which callers word themselves.
"""
from __future__ import annotations

import codecs
import os
from typing import Iterator

from ..errors import DataError
from ..files import open_regular

CHUNK_BYTES = 1 << 20
_BOMS = [(codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),   # before UTF-16: FF FE 00 00
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")]


def _convert_hint(encoding: str) -> str:
    return f"convert it first, e.g. iconv -f {encoding} -t utf-8"


def _check_start(name: str, head: bytes) -> None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            raise DataError(f"{name!r} is {encoding} text (it starts with the byte-order mark "
                            f"{bom.hex(' ').upper()}), not UTF-8; {_convert_hint(encoding.lower())}")


def _nul_error(name: str, block: bytes, at: int) -> DataError:
    """A NUL byte: UTF-16 without a byte-order mark when every other byte is NUL, binary data otherwise."""
    sample = block[:4096]
    odd, even = sample[1::2], sample[0::2]
    for part, endian in ((odd, "LE"), (even, "BE")):
        if len(part) >= 2 and part.count(0) >= 0.9 * len(part):
            return DataError(f"{name!r} looks like UTF-16 ({endian}, no byte-order mark): every other byte is NUL; "
                             f"{_convert_hint('utf-16' + endian.lower())}")
    return DataError(f"{name!r} holds a NUL byte at byte {at}: it is binary data, not UTF-8 text")


def read_text_chunks(path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The UTF-8 text of the regular file `path`, decoded `chunk_bytes` at a time."""
    name = os.fspath(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open_regular(path, "data file", DataError) as f:
        while True:
            try:
                block = f.read(chunk_bytes)
            except OSError as e:
                raise DataError(f"cannot read {name!r}: {e.strerror or e}") from None
            if offset == 0:
                _check_start(name, block)
            nul = block.find(b"\0")
            if nul >= 0:
                raise _nul_error(name, block, offset + nul)
            held_back = len(decoder.getstate()[0])   # the start of a character split by the last block
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                at = offset - held_back + e.start      # e.start counts from the held-back bytes
                raise DataError(f"{name!r} is not UTF-8 text (byte {at:,} is 0x{e.object[e.start]:02x}); "
                                f"{_convert_hint('latin1')}") from None
            offset += len(block)
            if text:
                yield text
            if not block:
                return
