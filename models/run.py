"""A run directory of `tinygrad-attn train`, read back safely: `load_run` and the checks behind it.

    from tinygrad_attn.models import load_run
    run = load_run("runs/gpt")            # Run(kind, model, tokenizer, extra); the model in eval mode
    print(run.tokenizer.decode(run.model.generate(run.tokenizer.encode("ROMEO."), 100)))

A run directory holds `checkpoint/` (weights, optimizer, configs), `tokenizer.json`
(trained on the training split), `metrics.jsonl` and a `.lock`. Before any model is built,
the stored config is checked (types, ranges) against the stored tensor shapes, and the
tokenizer against the fingerprint saved with the weights; a run's data file is recorded
by absolute path and sha256 so a resume can tell when it changed.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from tinygrad_attn import checkpoint
from tinygrad_attn.errors import CheckpointError, ConfigError, DataError, TokenizerError
from tinygrad_attn.files import open_regular
from tinygrad_attn.tokenizers import load_tokenizer
from tinygrad_attn.train import CHECKPOINT_DIR

from .config import TrainConfig
from .kinds import KINDS, ModelKind

TOKENIZER_FILE = "tokenizer.json"
SHAKESPEARE = "shakespeare"


class Run(NamedTuple):
    kind: str
    model: object
    tokenizer: object
    extra: dict


class RunConfig(NamedTuple):
    kind: ModelKind
    config: object
    train: TrainConfig
    extra: dict


# ---------------------------------------------------------------- configs, checked before any build

def _checked(cls, data, what: str, ckpt: Path):
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {ckpt}: its {what} is missing or not a dict")
    try:
        return cls.from_dict(data).check()
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {ckpt}: its {what} is invalid: {e}") from None
    except TypeError as e:
        raise CheckpointError(f"checkpoint {ckpt}: its {what} is invalid: {e}") from None


def _check_shapes(kind: ModelKind, config, ckpt: Path) -> None:
    """The config's sizes against the stored tensors' shapes (read from the JSON, not the weights)."""
    stored = checkpoint.read_shapes(ckpt)
    wrong = [f"{name} ({fields}): config gives {shape}, stored {stored.get(name, 'nothing')}"
             for name, (shape, fields) in kind.key_shapes(config).items() if stored.get(name) != shape]
    layers = {name.split(".")[1] for name in stored if name.startswith("blocks.")}
    if len(layers) != config.n_layers:
        wrong.append(f"n_layers: config gives {config.n_layers}, stored {len(layers)} blocks")
    if wrong:
        raise CheckpointError(f"checkpoint {ckpt}: its model config does not match its weights: {'; '.join(wrong)}")


def read_run_config(out_dir) -> RunConfig:
    """The checked kind, model config and training config of a run, without building anything."""
    ckpt = Path(out_dir) / CHECKPOINT_DIR
    if not checkpoint.exists(ckpt):
        raise CheckpointError(f"no trained run in {out_dir}: {ckpt} is missing; train one first, "
                              f"e.g. tinygrad-attn train gpt --out {out_dir}")
    extra = checkpoint.read_extra(ckpt)
    kind = KINDS.get(extra.get("kind"))
    if kind is None:
        raise CheckpointError(f"{ckpt} was not written by tinygrad-attn train (model kind {extra.get('kind')!r}, "
                              f"expected one of {sorted(KINDS)})")
    config = _checked(kind.config_cls, extra.get("model_config"), "model config", ckpt)
    train = _checked(TrainConfig, extra.get("train_config"), "training config", ckpt)
    _check_shapes(kind, config, ckpt)
    return RunConfig(kind, config, train, extra)


# ---------------------------------------------------------------- the tokenizer

def tokenizer_record(tokenizer) -> dict:
    return {"sha256": tokenizer.fingerprint(), "vocab_size": tokenizer.vocab_size, "type": tokenizer.kind}


def load_run_tokenizer(out_dir, config, extra: dict):
    """The run's tokenizer.json, refused if it is not the one the weights were trained with."""
    file = Path(out_dir) / TOKENIZER_FILE
    if not file.exists():
        raise TokenizerError(f"{file} is missing; the run directory is incomplete")
    tokenizer = load_tokenizer(file, vocab_size=config.vocab_size)   # sizes compared before anything is built
    saved = extra.get("tokenizer") or {"vocab_size": config.vocab_size}
    if tokenizer.vocab_size != config.vocab_size or saved.get("sha256", tokenizer.fingerprint()) != tokenizer.fingerprint():
        raise TokenizerError(
            f"{file} does not match the checkpoint: it has {tokenizer.vocab_size} tokens (sha256 "
            f"{tokenizer.fingerprint()[:12]}...), the model was trained with {saved.get('vocab_size')} "
            f"(sha256 {str(saved.get('sha256', '?'))[:12]}...); put back the tokenizer.json of this run")
    return tokenizer


# ---------------------------------------------------------------- the data

def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "data file", DataError) as f:   # a FIFO or /dev/zero would never end
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_record(source: str) -> dict:
    """How a checkpoint remembers its data: the bundled corpus, or a file's absolute path and sha256."""
    if source == SHAKESPEARE:
        return {"source": SHAKESPEARE}
    path = os.path.abspath(source)
    return {"path": path, "sha256": _file_sha256(path), "bytes": os.path.getsize(path)}


def data_source(extra: dict, allow_change: bool = False, warn=None) -> str:
    """The data a run was trained on ("shakespeare" or an absolute path), refused if the file changed.

    With `allow_change` a changed file is used anyway and `warn(message)` is told."""
    record = extra.get("data", SHAKESPEARE)
    if isinstance(record, str):           # written before paths and hashes were recorded
        return record
    if not isinstance(record, dict):
        raise CheckpointError(f"the run's data record is a {type(record).__name__}, expected the bundled corpus's "
                              f"name or a record of a file's path and sha256; evaluate with --data PATH")
    if record.get("source") == SHAKESPEARE:
        return SHAKESPEARE
    path = record.get("path")
    if not isinstance(path, str) or not os.path.isfile(path):
        raise DataError(f"the run's data file {path} is gone; put it back, or evaluate with --data PATH")
    now = _file_sha256(path)
    if now != record.get("sha256"):
        message = (f"the run's data file {path} changed since the run began (sha256 {now[:12]}... now, "
                   f"{str(record.get('sha256'))[:12]}... when trained)")
        if not allow_change:
            raise DataError(f"{message}; put the original back, or pass --allow-data-change to go on with the "
                            f"new text")
        if warn is not None:
            warn(f"{message}; going on with the new text (--allow-data-change)")
    return path


# ---------------------------------------------------------------- the public loader

def load_run(out_dir, device: str = "cpu") -> Run:
    """Run(kind, model, tokenizer, extra) of a trained run directory, the model on `device` in eval mode.

    Raises CheckpointError (missing, corrupted or inconsistent checkpoint; an invalid config is
    found before any model is built) or TokenizerError (tokenizer.json unreadable or not the
    one the model was trained with)."""
    kind, config, _, extra = read_run_config(out_dir)
    tokenizer = load_run_tokenizer(out_dir, config, extra)
    model = kind.model_cls(config)
    checkpoint.load(Path(out_dir) / CHECKPOINT_DIR, model, map_location=device)
    _check_finite(model, out_dir)
    return Run(kind.name, model.eval(), tokenizer, extra)


def _check_finite(model, out_dir) -> None:
    """CheckpointError naming the first weight that holds NaN or inf: nothing sampled or evaluated from it means anything."""
    import numpy as np
    for name, p in model.named_parameters():
        values = p.numpy()
        if not np.all(np.isfinite(values)):
            bad = "NaN" if np.isnan(values).any() else "inf"
            raise CheckpointError(f"{Path(out_dir) / CHECKPOINT_DIR}: weight {name} {tuple(values.shape)} holds {bad} "
                                  f"({int(np.sum(~np.isfinite(values)))} of {values.size} values); the run diverged "
                                  f"or the file was altered: resume from an earlier checkpoint or train again")
