"""Property-based fuzzing of every loader of a file a user or an attacker can change: random
mutations of a valid file (byte flips, cuts, insertions, JSON values swapped for others) end in
success or in the project's own error type, never another exception and never a hang."""
import json
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_attn import Tensor, checkpoint, nn, optim
from tinygrad_attn.errors import TinygradAttnError
from tinygrad_attn.run_dir import read_metrics_file
from tinygrad_attn.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)

byte_edits = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=8))), min_size=1, max_size=4)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=6)


def edit_bytes(data: bytes, edits) -> bytes:
    data = bytearray(data)
    for edit in edits:
        at = edit[1] % (len(data) + 1)
        if edit[0] == "flip" and data:
            data[at % len(data)] = edit[2]
        elif edit[0] == "cut":
            del data[at:]
        elif edit[0] == "insert":
            data[at:at] = edit[2]
    return bytes(data)


def replace_somewhere(value, choices, draw):
    """`value` (parsed JSON) with one node, picked by `draw`, replaced by another JSON value."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: replace_somewhere(value[key], choices, draw)}
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return value[:i] + [replace_somewhere(value[i], choices, draw)] + value[i + 1:]
    return draw(choices)


@st.composite
def mutations(draw, original: bytes):
    """A mutated copy of a JSON file's bytes: edited as bytes, or as JSON."""
    if draw(st.booleans()):
        return edit_bytes(original, draw(byte_edits))
    return json.dumps(replace_somewhere(json.loads(original), json_values, draw)).encode()


def ends_well(load):
    """Run `load`: success or a TinygradAttnError is fine; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load()
        except TinygradAttnError:
            pass


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    model = nn.Linear(3, 2)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    model(Tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.step()
    checkpoint.save(root / "ck", model, opt, extra={"trainer": {"step": 1}})
    BPETokenizer.train("the cat sat on the mat " * 20, 270, specials=("[UNK]",)).save(root / "bpe.json")
    CharTokenizer.train("the cat sat", specials=("[UNK]",)).save(root / "char.json")
    (root / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": 1.0 / (i + 1)}) + "\n" for i in range(4)))
    return root


def _fresh(saved, tmp_path):
    work = tmp_path / "work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(saved / "ck", work)
    return work


def _load_into_new(path):
    model = nn.Linear(3, 2)
    checkpoint.load(path, model, optim.AdamW(model.parameters(), lr=1e-3))


@FUZZ
@given(data=st.data())
def test_a_mutated_checkpoint_json_is_loaded_or_refused_cleanly(saved, tmp_path, data):
    work = _fresh(saved, tmp_path)
    meta = work / checkpoint.META_FILE
    meta.write_bytes(data.draw(mutations(meta.read_bytes())))
    ends_well(lambda: _load_into_new(work))


@FUZZ
@given(edits=byte_edits)
def test_a_mutated_weight_file_is_loaded_or_refused_cleanly(saved, tmp_path, edits):
    work = _fresh(saved, tmp_path)
    weights = work / checkpoint.MODEL_FILE
    weights.write_bytes(edit_bytes(weights.read_bytes(), edits))
    ends_well(lambda: _load_into_new(work))


@FUZZ
@given(edits=byte_edits)
def test_a_mutated_safetensors_header_reaches_the_parser_and_is_refused_cleanly(saved, tmp_path, edits):
    # the hash in checkpoint.json stops a mutated file before its parser sees it; here the record is
    # re-made to match the mutated bytes, so the safetensors header itself is what is checked
    work = _fresh(saved, tmp_path)
    weights, meta_file = work / checkpoint.MODEL_FILE, work / checkpoint.META_FILE
    blob = weights.read_bytes()
    header_end = 8 + int.from_bytes(blob[:8], "little")
    mutated = edit_bytes(blob[:header_end], edits) + blob[header_end:]
    weights.write_bytes(mutated)
    meta = json.loads(meta_file.read_bytes())
    section = dict(meta["model"], sha256=checkpoint._sha256(mutated), bytes=len(mutated))
    ends_well(lambda: checkpoint._read_tensors(work, section))


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["bpe.json", "char.json"]))
def test_a_mutated_tokenizer_json_is_loaded_or_refused_cleanly(saved, tmp_path, data, kind):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(data.draw(mutations((saved / kind).read_bytes())))
    for size in (None, 270):
        ends_well(lambda: load_tokenizer(path, vocab_size=size))


@FUZZ
@given(edits=byte_edits)
def test_a_mutated_metrics_log_is_read_or_refused_cleanly(saved, tmp_path, edits):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(edit_bytes((saved / "metrics.jsonl").read_bytes(), edits))
    ends_well(lambda: read_metrics_file(path))


@FUZZ
@given(data=st.data())
def test_a_forged_checkpoint_json_with_a_matching_signature_is_loaded_or_refused_cleanly(saved, tmp_path, data):
    # the sha256 in checkpoint.json is no secret: a forger recomputes it, and the fields themselves
    # (sections, shapes, scalars of the optimizer, extra) are what the loader must check
    work = _fresh(saved, tmp_path)
    meta_file = work / checkpoint.META_FILE
    meta = json.loads(meta_file.read_bytes())
    body = replace_somewhere({k: v for k, v in meta.items() if k != "meta_sha256"}, json_values, data.draw)
    if isinstance(body, dict):
        body["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(body))
    meta_file.write_text(json.dumps(body))
    ends_well(lambda: _load_into_new(work))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from test_train import gpt_setup
    from tinygrad_attn.data import load_shakespeare
    from tinygrad_attn.train import Trainer
    text = load_shakespeare()["hamlet"][:5_000]
    out = tmp_path_factory.mktemp("fuzz-run") / "run"
    model, opt, sched, batch_fn = gpt_setup(text, steps=4)
    Trainer(model, opt, batch_fn, schedule=sched, steps=4, out_dir=out, progress=False, print_fn=lambda *_: None).fit()
    return text, out


@settings(FUZZ, max_examples=min(settings.default.max_examples, 40))   # each example builds a model and trains
@given(data=st.data())
def test_a_forged_trainer_record_or_schedule_on_resume_ends_in_a_checkpoint_error(trained_run, tmp_path, data):
    # --resume reads the trainer's step, elapsed time and random states, and the schedule, from
    # checkpoint.json's extra: forged (and re-signed) they must be refused by name, not raise TypeError
    from test_train import gpt_setup
    from tinygrad_attn.train import Trainer
    text, out = trained_run
    work = tmp_path / "run"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(out, work)
    meta_file = work / "checkpoint" / checkpoint.META_FILE
    meta = json.loads(meta_file.read_bytes())
    field = data.draw(st.sampled_from(["extra", "scheduler"]))
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    body[field] = replace_somewhere(body[field], json_values, data.draw)
    body["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(body))
    meta_file.write_text(json.dumps(body))
    model, opt, sched, batch_fn = gpt_setup(text, steps=5)
    trainer = Trainer(model, opt, batch_fn, schedule=sched, steps=5, out_dir=work, progress=False,
                      print_fn=lambda *_: None)
    ends_well(lambda: trainer.fit(resume=True))
