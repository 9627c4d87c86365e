"""The run directory around a checkpoint: metrics that match the checkpoint, torn lines, one trainer
at a time, Ctrl-C that saves, and a resume of a finished run that says so."""
import json
import os
import signal

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import RunInUseError, checkpoint, optim
from tinygrad_attn.batching import lm_batches
from tinygrad_attn.filelock import try_lock
from tinygrad_attn.tokenizers import CharTokenizer
from tinygrad_attn.train import Trainer, read_metrics
from tinygrad_attn.models import GPT, get_preset

TEXT = "to be or not to be, that is the question. " * 40


def make_trainer(out, steps=6, eval_every=3, batch_fn=None, lines=None):
    tok = CharTokenizer.train(TEXT)
    data = np.array(tok.encode(TEXT))
    cfg = get_preset("gpt", "tiny").model.replace(vocab_size=tok.vocab_size, seq_len=16, d_model=16, n_layers=1)
    tga.manual_seed(0)
    model = GPT(cfg)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    plain = lambda rng: lm_batches(data, 2, cfg.seq_len, rng)   # noqa: E731
    return Trainer(model, opt, batch_fn or plain, steps=steps, eval_every=eval_every, out_dir=out, progress=False,
                   print_fn=(lines.append if lines is not None else lambda *_: None))


def steps_logged(out):
    return [r["step"] for r in read_metrics(out)]


def test_a_restart_before_the_first_checkpoint_starts_the_log_afresh(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in range(1, 74)))
    make_trainer(tmp_path, steps=5, eval_every=5).fit()
    assert steps_logged(tmp_path) == [1, 2, 3, 4, 5]


def test_a_torn_last_line_is_skipped_and_rewritten(tmp_path):
    make_trainer(tmp_path).fit(until=3)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss": 2.7')                       # the disk filled up mid-line
    with pytest.warns(UserWarning, match=r"metrics.jsonl: line 4 .*torn"):
        assert steps_logged(tmp_path) == [1, 2, 3]
    with pytest.warns(UserWarning, match="torn"):
        make_trainer(tmp_path).fit(resume=True)
    assert steps_logged(tmp_path) == [1, 2, 3, 4, 5, 6]
    assert all(json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines())


def test_a_second_trainer_on_one_run_directory_is_refused_and_told_who_holds_it(tmp_path):
    other = try_lock(tmp_path / ".lock", "pid 4242 on otherhost, since 2026-12-01 09:00:00")  # another process
    try:
        with pytest.raises(RunInUseError, match=r"in use by another trainer \(pid 4242 on otherhost"):
            make_trainer(tmp_path).fit()
        assert not (tmp_path / "metrics.jsonl").exists() and not checkpoint.exists(tmp_path / "checkpoint")
    finally:
        other.release()
    make_trainer(tmp_path).fit()                                 # free again once the other one is gone
    assert steps_logged(tmp_path) == [1, 2, 3, 4, 5, 6]


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT as an interactive Python has it (a shell's background job starts with it ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def interrupting(out, at_step, times, lines):
    calls = []

    def batch_fn(rng):
        calls.append(1)
        if len(calls) == at_step:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)             # the user presses Ctrl-C during step `at_step`
        return trainer_plain(rng)

    trainer = make_trainer(out, steps=20, eval_every=10, batch_fn=batch_fn, lines=lines)
    trainer_plain = make_trainer(out).batch_fn
    return trainer


def test_ctrl_c_finishes_the_step_saves_it_and_says_how_to_resume(tmp_path, ctrl_c_interrupts):
    lines = []
    trainer = interrupting(tmp_path, at_step=4, times=1, lines=lines)
    trainer.resume_command = "tinygrad-attn train gpt --out x --steps 20 --resume"
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert checkpoint.read_extra(tmp_path / "checkpoint")["trainer"]["step"] == 4
    assert steps_logged(tmp_path) == [1, 2, 3, 4]
    assert "saved a checkpoint at step 4" in lines[-1] and "--steps 20 --resume" in lines[-1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # the handler is put back
    history = make_trainer(tmp_path, steps=6).fit(resume=True)
    assert [r["step"] for r in history] == [5, 6]


def test_a_second_ctrl_c_quits_at_once_without_saving(tmp_path, ctrl_c_interrupts):
    lines = []
    with pytest.raises(KeyboardInterrupt):
        interrupting(tmp_path, at_step=4, times=2, lines=lines).fit()
    assert not checkpoint.exists(tmp_path / "checkpoint")
    assert "no checkpoint was written" in lines[-1]


def test_resuming_a_finished_run_trains_and_saves_nothing_and_says_so(tmp_path):
    make_trainer(tmp_path).fit()
    stamp = os.stat(tmp_path / "checkpoint" / "checkpoint.json").st_mtime_ns
    lines = []
    trainer = make_trainer(tmp_path, lines=lines)
    assert trainer.fit(resume=True) == []
    assert "already trained to step 6 of 6" in lines[-1]
    assert os.stat(tmp_path / "checkpoint" / "checkpoint.json").st_mtime_ns == stamp
    assert steps_logged(tmp_path) == [1, 2, 3, 4, 5, 6]
