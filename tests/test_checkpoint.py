"""Checkpoints: exact round trips, corruption caught before the model changes, crash-safe saves, no pickle."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import CheckpointError, checkpoint, optim

REPO = Path(__file__).resolve().parents[1]

# The classifier of the done-when scenario; exec'd here and in a fresh process
MODEL_SRC = '''
import numpy as np
import tinygrad_attn as tga
from tinygrad_attn import nn


class Classifier(nn.Module):
    """Token ids -> embeddings + positions -> pre-norm blocks -> masked mean pool -> class logits."""

    def __init__(self, vocab=8, d=16, heads=2, n_layers=2, max_len=8, n_classes=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d, padding_idx=0)
        self.pos = nn.PositionalEmbedding(max_len, d)
        self.blocks = nn.ModuleList([nn.TransformerBlock(d, heads, n_layers_for_init=n_layers) for _ in range(n_layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, ids, real):
        h = self.tok(ids) + self.pos(ids.shape[1])
        for blk in self.blocks:
            h = blk(h, key_padding_mask=real)
        w = tga.tensor(real.astype(np.float32)[..., None])
        return self.head((self.ln(h) * w).sum(axis=1) / w.sum(axis=1))
'''
_ns = {}
exec(MODEL_SRC, _ns)
Classifier = _ns["Classifier"]


def run_python(code, *args, timeout=60):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def trained(steps=3, seed=0):
    """A small model and an AdamW that has taken a few steps (so its moments are non-zero)."""
    tga.manual_seed(seed)
    model = Classifier()
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, 0.1), lr=1e-2)
    sched = optim.WarmupCosine(opt, 2, 10)
    ids = tga.randint(1, 8, (4, 8))
    real = np.ones((4, 8), dtype=bool)
    for _ in range(steps):
        opt.zero_grad()
        tga.functional.cross_entropy(model(ids, real), tga.tensor([0, 1, 1, 0])).backward()
        opt.step()
        sched.step()
    return model, opt, sched


def snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_state_equal(model, snap):
    state = model.state_dict()
    assert list(state) == list(snap)
    for k, v in state.items():
        np.testing.assert_array_equal(v.numpy(), snap[k], err_msg=k)


# ---------------------------------------------------------------- round trips

def test_round_trip_is_exact_for_model_optimizer_scheduler_and_extra(tmp_path):
    model, opt, sched = trained()
    extra = {"config": {"d": 16, "layers": 2}, "step": 3, "tokenizer": {"kind": "char", "vocab": list("abc")}}
    checkpoint.save(tmp_path / "ck", model, opt, extra=extra, scheduler=sched)
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # no temporary or backup directory left behind
    assert sorted(os.listdir(tmp_path / "ck")) == ["checkpoint.json", "model.safetensors", "optimizer.safetensors"]

    model2, opt2, sched2 = trained(steps=0, seed=9)
    assert checkpoint.load(tmp_path / "ck", model2, opt2, scheduler=sched2) == extra
    assert checkpoint.read_extra(tmp_path / "ck") == extra and checkpoint.exists(tmp_path / "ck")
    assert_state_equal(model2, snapshot(model))
    assert sched2.last_step == 3 and [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        for k, v in a["state"][i].items():
            np.testing.assert_array_equal(v, b["state"][i][k])


def test_load_goes_to_the_models_device(tmp_path, device):
    model, opt, _ = trained()
    checkpoint.save(tmp_path / "ck", model, opt)
    fresh, opt2, _ = trained(steps=0, seed=4)
    fresh.to(device)
    checkpoint.load(tmp_path / "ck", fresh, opt2)
    assert fresh.device == device
    xp = tga.get_backend(device).xp
    moments = [v for v in opt2.state[id(fresh.head.weight)].values() if hasattr(v, "shape")]
    assert len(moments) == 2 and all(isinstance(v, xp.ndarray) for v in moments)
    assert_state_equal(fresh, snapshot(model))
    back = Classifier()
    checkpoint.load(tmp_path / "ck", back, map_location=device)
    assert back.device == device


def test_saving_again_replaces_the_checkpoint(tmp_path):
    model, _, _ = trained()
    checkpoint.save(tmp_path / "ck", model, extra={"step": 1})
    model2, _, _ = trained(seed=3)
    checkpoint.save(tmp_path / "ck", model2, extra={"step": 2})
    fresh = Classifier()
    assert checkpoint.load(tmp_path / "ck", fresh) == {"step": 2}
    assert_state_equal(fresh, snapshot(model2))
    assert sorted(os.listdir(tmp_path)) == ["ck"]


# ---------------------------------------------------------------- corruption is caught before anything changes

@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "checkpoint.json"])
@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_files_raise_and_leave_the_model_alone(tmp_path, name, damage):
    model, opt, _ = trained()
    checkpoint.save(tmp_path / "ck", model, opt)
    file = tmp_path / "ck" / name
    data = bytearray(file.read_bytes())
    if damage == "truncate":
        file.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[len(data) * 2 // 3] ^= 0x01
        file.write_bytes(bytes(data))
    else:
        file.unlink()
    fresh, opt2, _ = trained(steps=0, seed=5)
    before = snapshot(fresh)
    with pytest.raises(CheckpointError, match=name if damage == "delete" or name != "checkpoint.json" else "checkpoint.json"):
        checkpoint.load(tmp_path / "ck", fresh, opt2)
    assert_state_equal(fresh, before)
    assert opt2.state == {}


def test_a_mismatched_model_is_refused_with_names_and_shapes(tmp_path):
    model, _, _ = trained()
    checkpoint.save(tmp_path / "ck", model)
    other = Classifier(d=8, n_layers=1, n_classes=3)
    before = snapshot(other)
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(tmp_path / "ck", other)
    msg = str(e.value)
    assert "unexpected" in msg and "blocks.1.ln1.weight" in msg
    assert "head.weight: got (2, 16), expected (3, 8)" in msg
    assert_state_equal(other, before)


def test_a_mismatched_optimizer_is_refused_before_the_model_changes(tmp_path):
    model, opt, _ = trained()
    checkpoint.save(tmp_path / "ck", model, opt)
    fresh = Classifier()
    before = snapshot(fresh)
    with pytest.raises(CheckpointError, match="optimizer"):
        checkpoint.load(tmp_path / "ck", fresh, optim.SGD(fresh.parameters(), lr=0.1))
    assert_state_equal(fresh, before)
    checkpoint.save(tmp_path / "weights_only", model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        checkpoint.load(tmp_path / "weights_only", fresh, optim.AdamW(fresh.parameters()))
    assert_state_equal(fresh, before)


def test_missing_checkpoint_and_unserializable_extra(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "nope", Classifier())
    model, _, _ = trained()
    checkpoint.save(tmp_path / "ck", model, extra={"step": 1})
    with pytest.raises(CheckpointError, match="JSON"):
        checkpoint.save(tmp_path / "ck", model, extra={"bad": object()})
    assert checkpoint.read_extra(tmp_path / "ck") == {"step": 1}
    assert not checkpoint.exists(tmp_path / "nope")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fix_json", [False, True])
def test_a_pickle_in_place_of_the_weights_is_never_run(tmp_path, fix_json):
    model, _, _ = trained()
    checkpoint.save(tmp_path / "ck", model)
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Payload(str(marker)))
    (tmp_path / "ck" / "model.safetensors").write_bytes(blob)
    if fix_json:  # an attacker who also rewrites the JSON: the hash passes, the parser must still refuse
        meta_file = tmp_path / "ck" / "checkpoint.json"
        meta = json.loads(meta_file.read_text())
        meta["model"]["sha256"] = checkpoint._sha256(blob)
        meta["model"]["bytes"] = len(blob)
        meta.pop("meta_sha256")
        meta["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(meta))
        meta_file.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        checkpoint.load(tmp_path / "ck", Classifier())
    assert not marker.exists()


# ---------------------------------------------------------------- crash safety

@pytest.mark.parametrize("failing_call", [1, 2])
def test_a_crash_between_renames_leaves_the_old_checkpoint_loadable(tmp_path, monkeypatch, failing_call):
    old, _, _ = trained(seed=1)
    checkpoint.save(tmp_path / "ck", old, extra={"v": "old"})
    new, _, _ = trained(seed=2)
    real_replace, calls = os.replace, []

    def crashing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_call:
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", crashing_replace)
    with pytest.raises(CheckpointError, match="simulated crash; the previous checkpoint is intact"):
        checkpoint.save(tmp_path / "ck", new, extra={"v": "new"})
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    # call 1 failed: the old directory never moved; call 2 failed: only the backup `ck.old` is whole
    assert (tmp_path / "ck").exists() == (failing_call == 1)
    fresh = Classifier()
    assert checkpoint.load(tmp_path / "ck", fresh) == {"v": "old"}
    assert_state_equal(fresh, snapshot(old))
    checkpoint.save(tmp_path / "ck", new, extra={"v": "new"})  # the next save recovers and cleans up
    assert checkpoint.read_extra(tmp_path / "ck") == {"v": "new"}
    assert sorted(os.listdir(tmp_path)) == ["ck"]


KILL_SRC = MODEL_SRC + '''
import sys
from tinygrad_attn import checkpoint
path = sys.argv[1]
states = []
for seed in (1, 2):
    tga.manual_seed(seed)
    states.append(Classifier(d=64, n_layers=4).state_dict())
model = Classifier(d=64, n_layers=4)
i = 0
while True:
    model.load_state_dict(states[i % 2])
    checkpoint.save(path, model, extra={"i": i % 2})
    if i == 0:
        print("ready", flush=True)
    i += 1
'''


def test_killing_a_process_mid_save_never_breaks_the_checkpoint(tmp_path):
    path = tmp_path / "ck"
    expected = []
    for seed in (1, 2):
        tga.manual_seed(seed)
        expected.append(snapshot(Classifier(d=64, n_layers=4)))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for delay in (0.0, 0.013, 0.031, 0.077):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SRC, str(path)], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        model = Classifier(d=64, n_layers=4)
        which = checkpoint.load(path, model)["i"]
        assert_state_equal(model, expected[which])


# ---------------------------------------------------------------- the done-when scenario

def test_train_save_and_reload_in_a_fresh_process(tmp_path):
    """A transformer classifier learns a toy task with AdamW + warm-up; a fresh process reloads it exactly."""
    tga.manual_seed(0)
    rng = np.random.default_rng(0)

    def batch(n):
        lengths = rng.integers(3, 9, size=n)
        real = np.arange(8)[None, :] < lengths[:, None]
        ids = np.where(real, rng.integers(1, 7, size=(n, 8)), 0)
        has_seven = rng.random(n) < 0.5  # label: does token 7 occur?
        pos = rng.integers(0, lengths)
        ids[has_seven, pos[has_seven]] = 7
        return tga.tensor(ids), real, tga.tensor(has_seven.astype(np.int64))

    config = dict(vocab=8, d=16, heads=2, n_layers=2, max_len=8, n_classes=2)
    model = Classifier(**config)
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, 0.01), lr=1e-2)
    sched = optim.WarmupCosine(opt, warmup_steps=10, total_steps=80)
    losses = []
    for _ in range(80):
        ids, real, y = batch(32)
        loss = tga.functional.cross_entropy(model(ids, real), y)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), losses

    checkpoint.save(tmp_path / "ck", model, opt, extra={"config": config}, scheduler=sched)
    ids, real, _ = batch(16)
    np.savez(tmp_path / "inputs.npz", ids=ids.numpy(), real=real)
    model.eval()
    expected = model(ids, real).numpy()

    code = MODEL_SRC + '''
import sys
from tinygrad_attn import checkpoint
path, inputs, out = sys.argv[1:]
model = Classifier(**checkpoint.read_extra(path)["config"])
checkpoint.load(path, model)
model.eval()
data = np.load(inputs)
np.save(out, model(tga.tensor(data["ids"]), data["real"]).numpy())
'''
    result = run_python(code, tmp_path / "ck", tmp_path / "inputs.npz", tmp_path / "out.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
