"""Opening files a user or an attacker can change, and replacing files atomically.

    data = read_regular(path, "tokenizer file", TokenizerError, max_bytes=MAX_JSON_BYTES)
    with open_regular(path, "--data", DataError) as f: ...        # a binary file object
    atomic_write(run_dir / "tokenizer.json", text)                # never through a planted link
    with atomic_writer(file) as f: f.write(block)                 # the same, streamed

Only regular files are read: a FIFO would block the reader forever, a device (/dev/zero)
never ends, and a directory is a mistake to name. The kind is checked with os.stat before
the open, and again with fstat on what was opened (O_NONBLOCK, so opening a FIFO cannot hang),
which closes the race where the path is swapped between the two. Sizes are checked before a
byte is read.

An atomic write goes to a temporary file made by tempfile.mkstemp in the same directory
(random name, O_EXCL: a symlink planted there is never followed), is fsynced, then renamed
over the target. A failure removes the temporary file and leaves the target as it was.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from .errors import TinygradAttnError, UnsafeFileError

_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _refuse(path, what: str, mode: int, error) -> TinygradAttnError:
    return error(f"{what} {os.fspath(path)} is {_kind(mode)}; expected a regular file")


def check_regular(path, what: str, error: type[TinygradAttnError] = UnsafeFileError) -> os.stat_result:
    """os.stat(path) if it is a regular file (symlinks followed); `error` naming the path otherwise.

    A missing path raises FileNotFoundError (callers word that case themselves)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"{what} {os.fspath(path)}: cannot read it: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, st.st_mode, error)
    return st


@contextlib.contextmanager
def open_regular(path, what: str, error: type[TinygradAttnError] = UnsafeFileError, max_bytes: int | None = None):
    """A binary file object on `path`, once both stat and fstat show a regular file of at most `max_bytes`."""
    check_regular(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"{what} {os.fspath(path)}: cannot open it: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):     # swapped for a FIFO or device after the stat
            raise _refuse(path, what, st.st_mode, error)
        if max_bytes is not None and st.st_size > max_bytes:
            raise error(f"{what} {os.fspath(path)} is {st.st_size:,} bytes, more than the {max_bytes:,} this "
                        f"reader accepts")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_regular(path, what: str, error: type[TinygradAttnError] = UnsafeFileError,
                 max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file `path` (at most `max_bytes`); `error` naming the path otherwise."""
    with open_regular(path, what, error, max_bytes) as f:
        try:
            # read one byte past the limit: a file that grew after the fstat is still refused
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"{what} {os.fspath(path)}: cannot read it: {e.strerror or e}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"{what} {os.fspath(path)} grew past the {max_bytes:,} bytes this reader accepts while read")
    return data


@contextlib.contextmanager
def atomic_writer(path, mode: int = 0o644):
    """A binary file object whose content replaces `path` when the `with` block ends without error."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)  # O_EXCL, 0600, random name
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode & ~_umask())   # mkstemp's 0600, widened to what open() would have given
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` (str is written as UTF-8) via a fresh temporary file beside it."""
    with atomic_writer(path, mode) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def open_append(path, what: str):
    """A text file opened for appending, never through a link and only if it is a regular file
    (a link planted at the name would otherwise send the lines into the file it points to)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if os.path.islink(path):
            raise UnsafeFileError(f"{what} {os.fspath(path)} is a symbolic link; it is never written through: "
                                  f"remove the link") from None
        raise UnsafeFileError(f"{what} {os.fspath(path)}: cannot open it: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refuse(path, what, mode, UnsafeFileError)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
