"""Checkpoints in hostile surroundings: symlinked directories, two writers, a racing reader,
forged paths in the JSON, a full disk and no permission."""
import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tinygrad_attn import CheckpointError, checkpoint
from tinygrad_attn import nn

REPO = Path(__file__).resolve().parents[1]


def tiny(seed=0, d=8):
    import tinygrad_attn as tga
    tga.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, d), nn.Linear(d, 2))


def weights(model):
    return [p.numpy().copy() for p in model.parameters()]


def same(a, b):
    return all((x == y).all() for x, y in zip(a, b))


# ---------------------------------------------------------------- 1. symlinks

def test_a_symlinked_checkpoint_directory_is_updated_through_the_link(tmp_path):
    real = tmp_path / "storage" / "ck"
    link = tmp_path / "ck"
    checkpoint.save(real, tiny(0), extra={"step": 1})
    link.symlink_to(real, target_is_directory=True)
    for step in (2, 3, 4):                       # every save goes to the target, the link stays a link
        checkpoint.save(link, tiny(step), extra={"step": step})
        assert link.is_symlink() and checkpoint.read_extra(real) == {"step": step}
    assert sorted(os.listdir(tmp_path)) == ["ck", "storage"]            # no dangling ck.old
    assert sorted(os.listdir(tmp_path / "storage")) == ["ck"]           # nor one beside the target
    fresh = tiny(9)
    assert checkpoint.load(link, fresh) == {"step": 4} and same(weights(fresh), weights(tiny(4)))


def test_a_stale_backup_left_by_an_old_save_does_not_block_the_next(tmp_path):
    """An earlier version moved the link itself to `ck.old`; saves and loads must get past it."""
    checkpoint.save(tmp_path / "elsewhere", tiny(0))
    checkpoint.save(tmp_path / "ck", tiny(1), extra={"step": 1})
    (tmp_path / "ck.old").symlink_to(tmp_path / "gone", target_is_directory=True)   # dangling
    checkpoint.save(tmp_path / "ck", tiny(2), extra={"step": 2})
    assert checkpoint.read_extra(tmp_path / "ck") == {"step": 2}
    assert not os.path.lexists(tmp_path / "ck.old")
    # a whole `.old` beside a whole checkpoint is stale: the checkpoint wins, the next save removes it
    checkpoint.save(tmp_path / "ck.old", tiny(3), extra={"step": 0})
    assert checkpoint.read_extra(tmp_path / "ck") == {"step": 2}
    checkpoint.save(tmp_path / "ck", tiny(4), extra={"step": 4})
    assert not os.path.lexists(tmp_path / "ck.old")


# ---------------------------------------------------------------- 2. two writers, glob characters

def _hammer(fn, n_threads, n_each):
    errors = []

    def work(i):
        for j in range(n_each):
            try:
                fn(i, j)
            except Exception as e:               # collected: the test reports them all
                errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_writers_on_one_path_never_break_each_other(tmp_path):
    models = [tiny(0, d=64), tiny(1, d=64)]
    errors = _hammer(lambda i, j: checkpoint.save(tmp_path / "ck", models[i], extra={"writer": i, "n": j}), 2, 15)
    assert errors == []
    assert checkpoint.read_extra(tmp_path / "ck")["n"] == 14
    assert sorted(p for p in os.listdir(tmp_path) if not p.endswith(".lock")) == ["ck"]


def test_a_reader_racing_a_writer_sees_one_whole_save(tmp_path):
    models = {i: tiny(i, d=64) for i in range(2)}
    expected = {i: weights(m) for i, m in models.items()}
    checkpoint.save(tmp_path / "ck", models[0], extra={"i": 0})
    bad = []

    def step(who, j):
        if who == 0:
            checkpoint.save(tmp_path / "ck", models[j % 2], extra={"i": j % 2})
        else:
            fresh = tiny(7, d=64)
            i = checkpoint.load(tmp_path / "ck", fresh)["i"]
            if not same(weights(fresh), expected[i]):
                bad.append(j)

    assert _hammer(step, 2, 30) == [] and bad == []


@pytest.mark.parametrize("name", ["run**x", "run*", "run[1]", "run?"])
def test_glob_characters_in_the_name_touch_no_other_checkpoint(tmp_path, name):
    # another writer's save of `runA`, in progress in this (live) process
    busy = tmp_path / f".runA.tmp-{os.getpid()}-0123abcd"
    busy.mkdir()
    checkpoint.save(tmp_path / name, tiny(0), extra={"name": name})
    checkpoint.save(tmp_path / name, tiny(1), extra={"name": name})
    assert busy.is_dir() and checkpoint.read_extra(tmp_path / name) == {"name": name}


def test_debris_of_a_dead_writer_is_cleaned_up(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    debris = tmp_path / f".ck.tmp-{int(dead.stdout)}-deadbeef"
    debris.mkdir()
    (debris / "model.safetensors").write_bytes(b"half")
    checkpoint.save(tmp_path / "ck", tiny(0))
    assert not debris.exists()


# ---------------------------------------------------------------- 4. forged paths

def _forge(ck: Path, change):
    meta = json.loads((ck / "checkpoint.json").read_text())
    change(meta)
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    meta["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(body))   # a careful forger re-signs
    (ck / "checkpoint.json").write_text(json.dumps(meta))


def test_a_file_entry_outside_the_checkpoint_is_refused(tmp_path):
    checkpoint.save(tmp_path / "ck", tiny(0))
    os.replace(tmp_path / "ck" / "model.safetensors", tmp_path / "outside.safetensors")
    _forge(tmp_path / "ck", lambda m: m["model"].update(file="../outside.safetensors"))
    with pytest.raises(CheckpointError, match=r"outside\.safetensors.*model\.safetensors"):
        checkpoint.load(tmp_path / "ck", tiny(1))


def test_stored_tensor_shapes_are_read_without_the_data(tmp_path):
    checkpoint.save(tmp_path / "ck", tiny(0, d=8))
    assert checkpoint.read_shapes(tmp_path / "ck") == {"0.weight": (8, 4), "0.bias": (8,), "1.weight": (2, 8),
                                                       "1.bias": (2,)}
    _forge(tmp_path / "ck", lambda m: m["model"]["tensors"]["0.weight"].update(shape=[8, "x"]))
    with pytest.raises(CheckpointError, match="0.weight"):
        checkpoint.read_shapes(tmp_path / "ck")


@pytest.mark.parametrize("signature", ["removed", "null", "edited", "kept"])
def test_an_edited_extra_is_refused_whatever_became_of_the_signature(tmp_path, signature):
    checkpoint.save(tmp_path / "ck", tiny(0), extra={"step": 3, "model_config": {"n_layers": 2}})
    file = tmp_path / "ck" / "checkpoint.json"
    meta = json.loads(file.read_text())
    meta["extra"]["model_config"]["n_layers"] = 1       # what an edit by hand would change
    if signature == "removed":
        del meta["meta_sha256"]
    elif signature == "null":
        meta["meta_sha256"] = None
    elif signature == "edited":
        meta["meta_sha256"] = "0" * 64
    file.write_text(json.dumps(meta))
    before = weights(target := tiny(1))
    for read in (lambda: checkpoint.read_extra(tmp_path / "ck"), lambda: checkpoint.load(tmp_path / "ck", target)):
        with pytest.raises(CheckpointError, match="checkpoint.json fails its sha256 check"):
            read()
    assert same(weights(target), before)


class _IntegerWeights:
    """Stands in for a model whose state is integers (another program's file, say), for checkpoint.save."""

    def __init__(self, model):
        import tinygrad_attn as tga
        self.state = {k: tga.Tensor((v.numpy() * 100).astype("int64")) for k, v in model.state_dict().items()}

    def state_dict(self):
        return self.state


def test_integer_tensors_are_refused_for_float_parameters(tmp_path):
    checkpoint.save(tmp_path / "ck", _IntegerWeights(tiny(0)))
    target = tiny(1)
    before = weights(target)
    with pytest.raises(CheckpointError, match="dtypes do not convert") as info:
        checkpoint.load(tmp_path / "ck", target)
    assert "0.weight: file int64, model float32" in str(info.value)   # names the tensor and both dtypes
    assert same(weights(target), before)


# ---------------------------------------------------------------- 5. full disk, no permission

@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   PermissionError(errno.EACCES, "Permission denied")])
def test_a_failed_write_says_what_and_where_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    checkpoint.save(tmp_path / "ck", tiny(0), extra={"step": 1})
    real_write = checkpoint._write

    def failing(path, data):
        if path.name == "optimizer.safetensors" or path.name == "checkpoint.json":
            raise error
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write", failing)
    with pytest.raises(CheckpointError) as info:
        checkpoint.save(tmp_path / "ck", tiny(1), extra={"step": 2})
    message = str(info.value)
    assert str(tmp_path / "ck") in message and error.strerror in message
    assert "previous checkpoint" in message and "intact" in message and ".tmp-" not in message
    assert sorted(p for p in os.listdir(tmp_path) if not p.endswith(".lock")) == ["ck"]   # own temp removed
    fresh = tiny(5)
    assert checkpoint.load(tmp_path / "ck", fresh) == {"step": 1} and same(weights(fresh), weights(tiny(0)))


def test_an_unwritable_parent_is_a_checkpoint_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(CheckpointError, match=r"could not save.*file"):
        checkpoint.save(tmp_path / "file" / "ck", tiny(0))


def test_without_locks_a_racing_reader_retries_or_says_a_save_was_in_progress(tmp_path, monkeypatch):
    """File systems without flock: a load that saw the checkpoint replaced under it retries; it never
    returns a mix of two saves and never calls a good checkpoint corrupted."""
    import contextlib
    monkeypatch.setattr(checkpoint, "file_lock", lambda *a, **k: contextlib.nullcontext())
    models = {i: tiny(i, d=64) for i in range(2)}
    expected = {i: weights(m) for i, m in models.items()}
    checkpoint.save(tmp_path / "ck", models[0], extra={"i": 0})
    bad, busy = [], []

    def step(who, j):
        if who == 0:
            checkpoint.save(tmp_path / "ck", models[j % 2], extra={"i": j % 2})
            return
        fresh = tiny(7, d=64)
        try:
            i = checkpoint.load(tmp_path / "ck", fresh)["i"]
        except CheckpointError as e:
            assert "save in progress" in str(e), e
            busy.append(j)
            return
        if not same(weights(fresh), expected[i]):
            bad.append(j)

    assert _hammer(step, 2, 30) == [] and bad == [] and len(busy) < 30


def test_a_weight_file_larger_than_its_record_is_refused_without_being_read(tmp_path, monkeypatch):
    ck = checkpoint
    model = nn.Linear(3, 2)
    ck.save(tmp_path / "ck", model)
    weights = tmp_path / "ck" / ck.MODEL_FILE
    with open(weights, "r+b") as f:
        f.truncate(8 << 30)                         # a sparse 8 GB file: no disk used
    meta_path = tmp_path / "ck" / ck.META_FILE
    meta = json.loads(meta_path.read_text())
    reads = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or b"")
    with pytest.raises(CheckpointError, match="8,589,934,592 bytes"):
        ck.load(tmp_path / "ck", nn.Linear(3, 2))
    assert weights not in reads and meta["model"]["bytes"] < 1000
