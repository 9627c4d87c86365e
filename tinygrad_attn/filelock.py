"""Advisory file locks (fcntl.flock) that serialize checkpoint writers and guard a run directory.

    with file_lock(path.with_name(".ck.lock"), exclusive=True):   # blocks until the lock is free
        ...
    lock = try_lock(run_dir / ".lock", owner="pid 12 on host")   # None when another process holds it

A lock lives as long as its open file: a killed process releases it, so there is never a
stale lock to delete by hand. Where flock does not exist (Windows) or the lock file cannot
be opened (a read-only directory), the locks do nothing and callers rely on their own checks.
"""
from __future__ import annotations

import contextlib
import os
import stat

from .errors import TinygradAttnError, UnsafeFileError
from .files import read_regular

try:
    import fcntl
except ImportError:      # Windows: no advisory locks; atomic renames still protect the files
    fcntl = None


def _open(path) -> int | None:
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):   # a reader may only have read access
        try:
            return os.open(path, flags, 0o644)
        except OSError:
            continue
    return None


@contextlib.contextmanager
def file_lock(path, exclusive: bool):
    """Hold a shared (readers) or exclusive (writers) lock on `path` for the `with` block."""
    fd = _open(path) if fcntl is not None else None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)     # closing releases the lock


class HeldLock:
    """An exclusive lock taken by `try_lock`; `release()` (or process exit) frees it."""

    def __init__(self, fd: int | None):
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_owner(path) -> str:
    try:
        return read_regular(path, "lock file", max_bytes=4096).decode("utf-8", errors="replace").strip() \
            or "another process"
    except (OSError, TinygradAttnError):
        return "another process"


def try_lock(path, owner: str) -> HeldLock | None:
    """Take an exclusive lock on `path` without waiting and write `owner` into it; None if it is held."""
    if fcntl is None:
        return HeldLock(None)
    # never through a planted link (the owner is written into the file), never blocked by a FIFO
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        kind = "a symlink" if os.path.islink(path) else "a directory" if os.path.isdir(path) else None
        expected = "expected a regular file (the lock, which holds the owner's pid)"
        raise UnsafeFileError(f"lock file {os.fspath(path)} is {kind}; {expected}" if kind else
                              f"lock file {os.fspath(path)}: cannot open it: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeFileError(f"lock file {os.fspath(path)} is not a regular file (mode {stat.filemode(mode)}); "
                              f"expected a regular file (the lock, which holds the owner's pid)")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, owner.encode())
    return HeldLock(fd)
