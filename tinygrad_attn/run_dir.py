"""What a run directory holds besides the checkpoint: its lock and its metrics log.

    with hold_run(out_dir):            # RunInUseError if another process trains there
        ...
    records = read_metrics(out_dir)    # a torn last line (full disk, kill) is skipped with a warning
    keep_metrics_through(out_dir, 120) # drop lines after the step being resumed

One process trains in a run directory at a time: the lock is an flock on `.lock`, which
holds the owner's pid, host and start time so the second trainer can say who it is. The
lock dies with its process, so a crash never leaves a run locked.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path

from .errors import RunInUseError, TinygradAttnError, UnsafeFileError
from .filelock import read_owner, try_lock
from .files import atomic_write, read_regular
from .safe_json import loads_json

LOCK_FILE = ".lock"
METRICS_FILE = "metrics.jsonl"
MAX_METRICS_BYTES = 1 << 30      # a million steps of ~200-byte records fit five times over
MAX_RECORD_BYTES = 1 << 20       # one line: a step's scalars are a few hundred bytes

_held: dict[str, list] = {}     # realpath -> [lock, depth]: the CLI and the Trainer nest their holds


@contextlib.contextmanager
def hold_run(out_dir):
    """Hold the run directory `out_dir` (created if missing) for the `with` block."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(out)
    if key in _held:
        _held[key][1] += 1
    else:
        owner = f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        lock = try_lock(out / LOCK_FILE, owner)
        if lock is None:
            raise RunInUseError(f"run directory {out} is in use by another trainer ({read_owner(out / LOCK_FILE)}); "
                                f"wait for it to finish, stop it, or pick another --out")
        _held[key] = [lock, 1]
    try:
        yield out
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            _held.pop(key)[0].release()


def _parse(lines: list[str], file: Path) -> tuple[list[dict], bool]:
    """(records, clean): lines that do not parse as JSON objects are skipped with a warning."""
    records, clean = [], True
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads_json(line, f"{file} line {number}", max_bytes=MAX_RECORD_BYTES)
        except TinygradAttnError:
            record = None
        if not isinstance(record, dict):
            warnings.warn(f"{file}: line {number} is not a JSON record (a torn write?); skipped it", stacklevel=3)
            clean = False
            continue
        records.append(record)
    return records, clean


def _lines(file: Path) -> list[str] | None:
    """The lines of a metrics log, None when there is none; UnsafeFileError if it is not a regular file."""
    try:
        data = read_regular(file, "metrics log", UnsafeFileError, max_bytes=MAX_METRICS_BYTES)
    except FileNotFoundError:
        return None
    return data.decode("utf-8", errors="replace").splitlines()


def read_metrics_file(file) -> list[dict]:
    """The records of one metrics.jsonl file (FileNotFoundError if missing); bad lines skipped with a warning."""
    lines = _lines(Path(file))
    if lines is None:
        raise FileNotFoundError(f"no metrics log at {file}")
    return _parse(lines, Path(file))[0]


def read_metrics(out_dir) -> list[dict]:
    """The records of `out_dir/metrics.jsonl`, in order; a torn or garbled line is skipped with a warning."""
    file = Path(out_dir) / METRICS_FILE
    lines = _lines(file)
    return [] if lines is None else _parse(lines, file)[0]


def keep_metrics_through(out_dir, step: int) -> None:
    """Rewrite metrics.jsonl with only the records of steps <= `step` (all gone for step 0), and no torn lines.

    Called when training (re)starts, so the log always matches the checkpoint it continues."""
    file = Path(out_dir) / METRICS_FILE
    lines = _lines(file)
    if lines is None:
        return
    records, clean = _parse(lines, file)
    kept = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= step]
    if clean and len(kept) == len(records):
        return
    atomic_write(file, "".join(json.dumps(r) + "\n" for r in kept))
