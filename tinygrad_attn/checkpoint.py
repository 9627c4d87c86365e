"""Checkpoints: a directory of safetensors files plus one JSON, written atomically, checked on load.

    checkpoint.save("runs/gpt", model, optimizer, extra={"config": cfg, "step": 1200})
    cfg = checkpoint.read_extra("runs/gpt")["config"]      # rebuild the model first...
    extra = checkpoint.load("runs/gpt", model, optimizer)   # ...then fill it

On disk (`path` is a directory):
  model.safetensors      the model's state_dict (parameters and persistent buffers)
  optimizer.safetensors  the optimizer's per-parameter arrays (Adam moments, momentum)
  checkpoint.json        names/shapes/dtypes and sha256 of each file, optimizer scalars and
                         hyperparameters, scheduler state, the caller's `extra`, and a
                         sha256 of the JSON itself
No pickle anywhere: safetensors holds raw bytes and a JSON header, so loading a file
never runs code.

Atomic save: everything is written and fsynced in a hidden sibling directory; then the
old checkpoint is renamed to `<path>.old`, the new one renamed to `<path>`, and the old
one removed. A crash at any point leaves either `<path>` or `<path>.old` whole, and
`load` falls back to `<path>.old` when `<path>` is missing. A `<path>` that is a symlink
stays one: the save goes to its target. A write that fails (disk full, no permission)
removes its own temporary directory and raises CheckpointError; the previous checkpoint
is untouched.

Several processes: writers take an exclusive lock (`.<name>.lock` beside the checkpoint)
and readers a shared one, so a load sees one whole save. Where locks are unavailable a
load that finds the checkpoint replaced under it retries. Temporary directories are
named `.<name>.tmp-<pid>-<random>`; a save removes only those of dead processes.

Load checks everything (files present, hashes, safetensors headers, names, shapes,
dtypes, optimizer layout) before it touches the model: a failed load raises
CheckpointError and leaves the model and optimizer as they were.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .filelock import file_lock
from .files import check_regular, read_regular
from .safe_json import MAX_JSON_BYTES, loads_json

FORMAT, VERSION = "tinygrad_attn.checkpoint", 1
MODEL_FILE, OPTIMIZER_FILE, META_FILE = "model.safetensors", "optimizer.safetensors", "checkpoint.json"


def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError:
        raise CheckpointError("checkpoints need the safetensors package: pip install 'safetensors>=0.4'") from None
    return st


def _aside(path: Path) -> Path:
    return path.with_name(path.name + ".old")


def _target(path: Path) -> Path:
    """Where the checkpoint really lives: the target of a symlink (which then stays a link)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _lock_dir(target: Path) -> Path:
    """Saves and loads lock the directory that holds the checkpoint: no lock file is left behind."""
    return target.parent


def _remove(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a directory tree."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _canonical(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, default=_json_default).encode()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


_MAX_HEADER_BYTES = 1 << 24   # a safetensors header is JSON of names, dtypes and offsets: far below 16 MiB


def _tensor_bytes(tensors: dict) -> int:
    """Bytes of the data of the tensors a manifest lists (names -> {"shape", "dtype"})."""
    try:
        return sum(int(np.prod(t["shape"], dtype=np.int64)) * np.dtype(t["dtype"]).itemsize for t in tensors.values())
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{META_FILE}: its tensor list is malformed ({e!r})") from None


def _manifest(arrays: dict) -> dict:
    return {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in arrays.items()}


def _tensor_file(arrays: dict, filename: str) -> tuple[bytes, dict]:
    blob = _safetensors().save(arrays) if arrays else _safetensors().save({})
    return blob, {"file": filename, "sha256": _sha256(blob), "bytes": len(blob), "tensors": _manifest(arrays)}


def _split_optimizer_state(state_dict: dict):
    """Arrays (for safetensors) apart from scalars (for JSON)."""
    arrays, scalars = {}, {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if hasattr(value, "shape"):
                arrays[f"state.{index}.{name}"] = np.ascontiguousarray(value)
            else:
                scalars.setdefault(str(index), {})[name] = value
    return arrays, scalars


# ---------------------------------------------------------------- save

_DEBRIS_MAX_AGE_S = 24 * 3600   # a temp directory this old is debris even if its pid was reused


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # exists, owned by someone else
        return True
    return True


def _remove_dead_debris(target: Path) -> None:
    """Remove temp directories of this checkpoint left by writers that died mid-save (never a live one's)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.tmp-(\d+)-[0-9a-f]{{8}}")
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > _DEBRIS_MAX_AGE_S
        except OSError:
            continue
        if old or not _alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)


def _save_error(path: Path, what: str, error: OSError, swapped: bool = False) -> CheckpointError:
    reason = error.strerror or str(error)
    if what == "creating its directory" and error.filename:
        reason += f": {error.filename}"
    if swapped:
        kept = f"the previous checkpoint is intact (at {path} or {_aside(path)}, which load reads)"
    elif exists(path):
        kept = f"the previous checkpoint at {path} is intact"
    else:
        kept = "nothing was saved and there was no previous checkpoint"
    return CheckpointError(f"checkpoint.save: could not save {path}: {what} failed: {reason}; {kept}")


def save(path, model, optimizer=None, extra=None, scheduler=None) -> Path:
    """Write model (and optimizer/scheduler) state plus `extra` (a JSON-able dict) to directory `path`, atomically."""
    path = Path(path)
    extra = {} if extra is None else extra
    model_arrays = {name: np.ascontiguousarray(t.numpy()) for name, t in model.state_dict().items()}
    model_blob, model_meta = _tensor_file(model_arrays, MODEL_FILE)
    meta = {"format": FORMAT, "version": VERSION, "model": model_meta, "optimizer": None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None, "extra": extra}
    optim_blob = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        arrays, scalars = _split_optimizer_state(sd)
        optim_blob, optim_meta = _tensor_file(arrays, OPTIMIZER_FILE)
        meta["optimizer"] = {**optim_meta, "type": sd["type"], "param_groups": sd["param_groups"], "scalars": scalars}
    try:
        meta["meta_sha256"] = _sha256(_canonical(meta))
        meta_bytes = json.dumps(meta, indent=1, sort_keys=True, default=_json_default).encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint.save: `extra` must be JSON-serializable: {e}") from None

    target = _target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _save_error(path, "creating its directory", e) from None
    with file_lock(_lock_dir(target), exclusive=True):
        _remove_dead_debris(target)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            tmp.mkdir()
            _write(tmp / MODEL_FILE, model_blob)
            if optim_blob is not None:
                _write(tmp / OPTIMIZER_FILE, optim_blob)
            _write(tmp / META_FILE, meta_bytes)  # last: a directory with the JSON is complete
            _fsync_dir(tmp)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError):
                raise _save_error(path, "writing the new files", e) from None
            raise
        try:
            _swap_in(tmp, target)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _save_error(path, "replacing the old checkpoint", e, swapped=True) from None
    return path


def _swap_in(tmp: Path, target: Path) -> None:
    aside = _aside(target)
    if os.path.lexists(target):
        if os.path.lexists(aside):
            _remove(aside)            # target is whole, so a backup (or a stale link) is not needed
        os.replace(target, aside)     # from here until the next rename, only `aside` is whole
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if os.path.lexists(aside):
        try:
            _remove(aside)
        except OSError:
            pass                      # the next save removes it


# ---------------------------------------------------------------- load

_READ_ATTEMPTS = 5


def _resolve(path) -> Path:
    path = _target(Path(path))
    if path.is_dir():
        return path
    if _aside(path).is_dir():  # a save was interrupted between its two renames
        return _aside(path)
    if path.exists():
        raise CheckpointError(f"checkpoint {path} is a file; a checkpoint is a directory made by checkpoint.save")
    raise CheckpointError(f"no checkpoint at {path}")


def _stamp(target: Path):
    """Identifies the save on disk: each save writes a new checkpoint.json (new inode)."""
    stamp = []
    for directory in (target, _aside(target)):
        try:
            st = os.stat(directory / META_FILE)
            stamp.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def _consistent(path, read):
    """read() under a shared lock, retried while a save replaces the checkpoint under it.

    The lock alone suffices where flock works; the retry covers file systems without it."""
    target = _target(Path(path))
    for attempt in range(_READ_ATTEMPTS):
        with file_lock(_lock_dir(target), exclusive=False):
            before = _stamp(target)   # taken under the lock: a writer that finished while we waited is no change
            try:
                result = read()
            except CheckpointError:
                if _stamp(target) == before:
                    raise         # nothing moved: the checkpoint really is bad
            else:
                if _stamp(target) == before:
                    return result
        time.sleep(0.05 * (attempt + 1))
    raise CheckpointError(f"checkpoint {path}: it was replaced by a save in progress in each of {_READ_ATTEMPTS} "
                          f"attempts to read it; try again when the save has finished")


def exists(path) -> bool:
    """True when `path` (or its backup from an interrupted save) holds a checkpoint."""
    try:
        return (_resolve(path) / META_FILE).is_file()
    except CheckpointError:
        return False


def _check_section(directory: Path, meta: dict, key: str, filename: str) -> dict:
    """A file entry of checkpoint.json, with the one file name it may have (never a path elsewhere)."""
    section = meta.get(key)
    if not isinstance(section, dict) or not isinstance(section.get("tensors"), dict):
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} has no valid '{key}' entry")
    if section.get("file") != filename:
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} names the {key} file {section.get('file')!r}; "
                              f"it must be {filename!r} inside the checkpoint directory")
    if not isinstance(section.get("bytes"), int) or not isinstance(section.get("sha256"), str):
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} '{key}' entry lacks its size or sha256")
    return section


def _read_meta(directory: Path) -> dict:
    file = directory / META_FILE
    try:
        data = read_regular(file, f"checkpoint {directory}:", CheckpointError, max_bytes=MAX_JSON_BYTES)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} is missing") from None
    meta = loads_json(data, f"checkpoint {directory}: {META_FILE}", CheckpointError)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} is not a tinygrad_attn checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {directory}: format version {meta.get('version')}, this code reads {VERSION}")
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    if meta.get("meta_sha256") != _sha256(_canonical(body)):
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} fails its sha256 check (edited or corrupted)")
    _check_section(directory, meta, "model", MODEL_FILE)
    if meta.get("optimizer") is not None:
        _check_section(directory, meta, "optimizer", OPTIMIZER_FILE)
    if not isinstance(meta.get("extra"), dict):
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} has no 'extra' dict")
    return meta


def read_extra(path) -> dict:
    """The `extra` dict saved with the checkpoint (config, step, ...), without reading any weights."""
    return _consistent(path, lambda: _read_meta(_resolve(path))["extra"])


def read_shapes(path) -> dict[str, tuple]:
    """{name: shape} of the model's stored tensors, from checkpoint.json alone (no tensor data is read).

    Lets a caller compare a config with the weights before it builds (and allocates) a model."""
    def read():
        directory = _resolve(path)
        shapes = {}
        for name, entry in _read_meta(directory)["model"]["tensors"].items():
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
                raise CheckpointError(f"checkpoint {directory}: {META_FILE} gives tensor {name} the shape {shape!r}; "
                                      f"expected a list of non-negative integers")
            shapes[name] = tuple(shape)
        return shapes
    return _consistent(path, read)


def _read_tensors(directory: Path, section: dict) -> dict:
    """The arrays of one safetensors file, after checking its hash and its manifest."""
    file = directory / section["file"]
    if not file.is_file():
        raise CheckpointError(f"checkpoint {directory}: {section['file']} is missing")
    # sizes before bytes: the file must be what checkpoint.json says, and checkpoint.json must not
    # promise more than its own tensor list holds (a forged or sparse 8 GB file is never read)
    limit = _tensor_bytes(section["tensors"]) + _MAX_HEADER_BYTES
    size = file.stat().st_size
    if size != section["bytes"] or size > limit:
        raise CheckpointError(
            f"checkpoint {directory}: {section['file']} is {size:,} bytes; {META_FILE} records "
            f"{section['bytes']:,} and its tensors need at most {limit:,}: the file is corrupted, truncated or forged")
    try:
        blob = read_regular(file, f"checkpoint file {section['file']}", CheckpointError, max_bytes=limit)
    except OSError as e:
        raise CheckpointError(f"checkpoint {directory}: cannot read {section['file']}: {e.strerror or e}") from None
    if len(blob) != section["bytes"] or _sha256(blob) != section["sha256"]:
        raise CheckpointError(
            f"checkpoint {directory}: {section['file']} is corrupted or truncated: {len(blob)} bytes with sha256 "
            f"{_sha256(blob)[:16]}..., expected {section['bytes']} bytes with sha256 {section['sha256'][:16]}...")
    try:
        arrays = _safetensors().load(blob)
    except Exception as e:  # the parser's own error types vary by version
        raise CheckpointError(f"checkpoint {directory}: {section['file']} is not a valid safetensors file: {e}") from None
    if _manifest(arrays) != section["tensors"]:
        raise CheckpointError(f"checkpoint {directory}: {section['file']} does not match the names/shapes/dtypes "
                              f"recorded in {META_FILE}")
    return arrays


def _check_dtypes(directory, arrays, model):
    targets = model.state_dict()
    bad = [f"{k}: file {a.dtype}, model {targets[k].dtype}" for k, a in arrays.items()
           if k in targets and (a.dtype.kind == "f") != (np.dtype(targets[k].dtype).kind == "f")]
    if bad:
        raise CheckpointError(f"checkpoint {directory}: dtypes do not convert: {'; '.join(bad)}")


def _read_checked(path, model, optimizer, scheduler):
    """Everything `load` needs, read from one save and checked against the model/optimizer."""
    directory = _resolve(path)
    meta = _read_meta(directory)
    arrays = _read_tensors(directory, meta["model"])
    try:
        model.check_state_dict(arrays, strict=True)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {directory} does not fit the model: {e}") from None
    _check_dtypes(directory, arrays, model)

    optim_state = None
    if optimizer is not None:
        section = meta.get("optimizer")
        if section is None:
            raise CheckpointError(f"checkpoint {directory} has no optimizer state (it was saved without an optimizer)")
        flat = _read_tensors(directory, section)
        try:
            state = {int(i): dict(v) for i, v in section["scalars"].items()}
            for key, value in flat.items():
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
            optim_state = {"type": section["type"], "state": state, "param_groups": section["param_groups"]}
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"checkpoint {directory}: malformed optimizer entry in {META_FILE}: {e!r}") from None
        try:
            optimizer.check_state_dict(optim_state)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {directory} does not fit the optimizer: {e}") from None
    if scheduler is not None and meta.get("scheduler") is None:
        raise CheckpointError(f"checkpoint {directory} has no scheduler state")
    if scheduler is not None and hasattr(scheduler, "check_state_dict"):
        try:
            scheduler.check_state_dict(meta["scheduler"])
        except CheckpointError as e:
            raise CheckpointError(f"checkpoint {directory}: {e}") from None
    return meta, arrays, optim_state


def load(path, model, optimizer=None, map_location=None, scheduler=None) -> dict:
    """Fill `model` (and `optimizer`, `scheduler`) from the checkpoint at `path`; return its `extra`.

    Values go to each parameter's device, converted to its float dtype. With
    `map_location` the model is first moved there (after all checks passed).
    Raises CheckpointError, before changing anything, if a file is missing, corrupted
    or truncated, or does not fit the model/optimizer (the message lists the names).
    """
    meta, arrays, optim_state = _consistent(path, lambda: _read_checked(path, model, optimizer, scheduler))
    # every check passed: from here on nothing can fail for a reason the checks cover
    if map_location is not None:
        model.to(map_location)
    model.load_state_dict(arrays)
    if optim_state is not None:
        optimizer.load_state_dict(optim_state)
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    return meta["extra"]
