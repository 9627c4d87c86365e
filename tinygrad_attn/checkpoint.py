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
`load` falls back to `<path>.old` when `<path>` is missing.

Load checks everything (files present, hashes, safetensors headers, names, shapes,
dtypes, optimizer layout) before it touches the model: a failed load raises
CheckpointError and leaves the model and optimizer as they were.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from .errors import CheckpointError

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

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # debris of an interrupted save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        _write(tmp / MODEL_FILE, model_blob)
        if optim_blob is not None:
            _write(tmp / OPTIMIZER_FILE, optim_blob)
        _write(tmp / META_FILE, meta_bytes)  # last: a directory with the JSON is complete
        _fsync_dir(tmp)
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap_in(tmp: Path, path: Path) -> None:
    aside = _aside(path)
    if path.exists():
        if aside.exists():
            shutil.rmtree(aside)      # path is whole, so the old backup is not needed
        os.replace(path, aside)       # from here until the next rename, only `aside` is whole
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if aside.exists():
        shutil.rmtree(aside, ignore_errors=True)


# ---------------------------------------------------------------- load

def _resolve(path) -> Path:
    path = Path(path)
    if path.is_dir():
        return path
    if _aside(path).is_dir():  # a save was interrupted between its two renames
        return _aside(path)
    if path.exists():
        raise CheckpointError(f"checkpoint {path} is a file; a checkpoint is a directory made by checkpoint.save")
    raise CheckpointError(f"no checkpoint at {path}")


def exists(path) -> bool:
    """True when `path` (or its backup from an interrupted save) holds a checkpoint."""
    try:
        return (_resolve(path) / META_FILE).is_file()
    except CheckpointError:
        return False


def _read_meta(directory: Path) -> dict:
    file = directory / META_FILE
    if not file.is_file():
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} is missing")
    try:
        meta = json.loads(file.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} is not valid JSON (truncated or corrupted?): {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} is not a tinygrad_attn checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {directory}: format version {meta.get('version')}, this code reads {VERSION}")
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    if meta.get("meta_sha256") != _sha256(_canonical(body)):
        raise CheckpointError(f"checkpoint {directory}: {META_FILE} fails its sha256 check (edited or corrupted)")
    return meta


def read_extra(path) -> dict:
    """The `extra` dict saved with the checkpoint (config, step, ...), without reading any weights."""
    return _read_meta(_resolve(path))["extra"]


def _read_tensors(directory: Path, section: dict) -> dict:
    """The arrays of one safetensors file, after checking its hash and its manifest."""
    file = directory / section["file"]
    if not file.is_file():
        raise CheckpointError(f"checkpoint {directory}: {section['file']} is missing")
    blob = file.read_bytes()
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


def load(path, model, optimizer=None, map_location=None, scheduler=None) -> dict:
    """Fill `model` (and `optimizer`, `scheduler`) from the checkpoint at `path`; return its `extra`.

    Values go to each parameter's device, converted to its float dtype. With
    `map_location` the model is first moved there (after all checks passed).
    Raises CheckpointError, before changing anything, if a file is missing, corrupted
    or truncated, or does not fit the model/optimizer (the message lists the names).
    """
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
        state = {int(i): dict(v) for i, v in section["scalars"].items()}
        for key, value in flat.items():
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
        optim_state = {"type": section["type"], "state": state, "param_groups": section["param_groups"]}
        try:
            optimizer.check_state_dict(optim_state)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {directory} does not fit the optimizer: {e}") from None
    if scheduler is not None and meta.get("scheduler") is None:
        raise CheckpointError(f"checkpoint {directory} has no scheduler state")

    # every check passed: from here on nothing can fail for a reason the checks cover
    if map_location is not None:
        model.to(map_location)
    model.load_state_dict(arrays)
    if optim_state is not None:
        optimizer.load_state_dict(optim_state)
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    return meta["extra"]
