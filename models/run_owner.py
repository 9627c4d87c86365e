"""The run directory belongs to the trainer: it touches only what it wrote, and --overwrite loses nothing.

    check_owned(out)                 # OwnershipError naming anything in `out` the trainer did not write
    claim(out)                       # write the marker that says tinygrad-attn trains here
    with replacing(out):             # --overwrite: the old run moves aside, and comes back on any failure
        train()

A directory is the trainer's when it is empty, or holds the marker `.tinygrad-attn-run` (or, from
before the marker, a whole checkpoint), and nothing but the names the trainer writes. `checkpoint/`
counts as the trainer's only when it holds a checkpoint (checkpoint.exists): a `checkpoint/` that
another tool made is foreign, and so is refused rather than replaced.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path

from tinygrad_attn import checkpoint
from tinygrad_attn.errors import TinygradAttnError
from tinygrad_attn.files import atomic_write
from tinygrad_attn.run_dir import LOCK_FILE, METRICS_FILE
from tinygrad_attn.train import CHECKPOINT_DIR

MARKER = ".tinygrad-attn-run"
TOKENIZER_NAME, TOKENS_DIR = "tokenizer.json", "tokens"
ASIDE_PREFIX = ".replaced-"
# what a run writes besides the marker and the lock, and what an --overwrite moves aside
RUN_ENTRIES = (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old", TOKENIZER_NAME, METRICS_FILE, TOKENS_DIR)
# debris of our own interrupted writes: checkpoint.save's temporaries and atomic_write's
_DEBRIS = re.compile(rf"\.{re.escape(CHECKPOINT_DIR)}\.tmp-\d+-[0-9a-f]{{8}}|\.[^/]+\.[^/]*\.tmp|"
                     rf"{re.escape(ASIDE_PREFIX)}[A-Za-z0-9_]+")


class OwnershipError(TinygradAttnError, ValueError):
    """`out` holds something the trainer did not write (the CLI reports it as a usage mistake)."""


def _ours(out: Path, name: str) -> bool:
    if name == CHECKPOINT_DIR:
        return checkpoint.exists(out / CHECKPOINT_DIR)
    return name in RUN_ENTRIES or name in (MARKER, LOCK_FILE) or bool(_DEBRIS.fullmatch(name))


def foreign_entries(out: Path) -> list[str]:
    """The names in `out` that the trainer did not write (none for a missing or empty directory)."""
    if not out.is_dir():
        return []
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return []
    claimed = (out / MARKER).is_file() or checkpoint.exists(out / CHECKPOINT_DIR)
    return [n for n in names if not _empty_slot(out, n) and (not claimed or not _ours(out, n))]


def _empty_slot(out: Path, name: str) -> bool:
    """An empty directory at one of our names (a `checkpoint` linked to a bigger disk): nothing there to lose."""
    path = out / name
    return name in RUN_ENTRIES and path.is_dir() and not any(path.iterdir())


def check_owned(out: Path) -> None:
    foreign = foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OwnershipError(f"--out {out} holds files tinygrad-attn did not write ({shown}); it never deletes or "
                             f"replaces those: pick another --out, or an empty directory")


def claim(out: Path) -> None:
    """Mark `out` as a tinygrad-attn run directory (the marker is what `check_owned` trusts)."""
    if not (out / MARKER).is_file():
        atomic_write(out / MARKER, "tinygrad-attn trains in this directory; it writes only " +
                     ", ".join(RUN_ENTRIES) + "\n")


def recover(out: Path, say) -> None:
    """An --overwrite that was killed left the old run aside: put it back if no new checkpoint
    came of it, else drop it (the new run is the run now)."""
    for aside in sorted(out.glob(ASIDE_PREFIX + "*")) if out.is_dir() else []:
        if checkpoint.exists(out / CHECKPOINT_DIR):
            shutil.rmtree(aside, ignore_errors=True)
        else:
            _restore(out, aside)
            say(f"{out}: an --overwrite was interrupted before its first checkpoint; the run it replaced is back")


def _restore(out: Path, aside: Path) -> None:
    for name in RUN_ENTRIES:
        _remove(out / name)
    for entry in aside.iterdir():
        entry.replace(out / entry.name)
    aside.rmdir()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


@contextlib.contextmanager
def replacing(out: Path):
    """Move the run in `out` aside for the `with` block; keep the new run if it saved a checkpoint
    by the end of the block (or when it fails after one), else put the old run back exactly."""
    aside = Path(tempfile.mkdtemp(prefix=ASIDE_PREFIX, dir=out))
    for name in RUN_ENTRIES:
        if (out / name).exists() or (out / name).is_symlink():
            (out / name).replace(aside / name)
    try:
        yield
    except BaseException:
        if checkpoint.exists(out / CHECKPOINT_DIR):
            shutil.rmtree(aside, ignore_errors=True)
        else:
            _restore(out, aside)
        raise
    if checkpoint.exists(out / CHECKPOINT_DIR):
        shutil.rmtree(aside, ignore_errors=True)
    else:   # the block ended without a checkpoint (nothing trained): the old run stays the run
        _restore(out, aside)
