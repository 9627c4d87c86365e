"""The training loop: loss falls, resume is bit-exact, the NaN guard keeps the last good checkpoint."""
import json

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import checkpoint, optim
from tinygrad_attn.batching import lm_batches, mlm_batches
from tinygrad_attn.data import load_shakespeare
from tinygrad_attn.tokenizers import CharTokenizer
from tinygrad_attn.train import NonFiniteError, Trainer, read_metrics
from tinygrad_attn.models import GPT, MaskedLM, get_preset
from tinygrad_attn.models.config import MLM_SPECIALS


@pytest.fixture(scope="module")
def text():
    return load_shakespeare()["hamlet"][:60_000]


def gpt_setup(text, dropout=0.0, steps=30, lr=3e-3):
    tok = CharTokenizer.train(text)
    data = np.array(tok.encode(text))
    cfg = get_preset("gpt", "tiny").model.replace(vocab_size=tok.vocab_size, dropout=dropout)
    tga.manual_seed(0)
    model = GPT(cfg)
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, 0.1), lr=lr)
    sched = optim.WarmupCosine(opt, 3, steps, 0.1)
    batch_fn = lambda rng: lm_batches(data, 8, cfg.seq_len, rng)   # noqa: E731
    return model, opt, sched, batch_fn


def test_gpt_loss_falls(text):
    model, opt, sched, batch_fn = gpt_setup(text, steps=40)
    history = Trainer(model, opt, batch_fn, steps=40, schedule=sched, progress=False,
                      print_fn=lambda *_: None).fit()
    first, last = np.mean([r["loss"] for r in history[:5]]), np.mean([r["loss"] for r in history[-5:]])
    assert first > 3.5 and last < first - 0.8, (first, last)


def test_mlm_loss_falls(text):
    tok = CharTokenizer.train(text, specials=MLM_SPECIALS)
    data = np.array(tok.encode(text))
    sp = tok.special_ids
    cfg = get_preset("mlm", "tiny").model.replace(vocab_size=tok.vocab_size, pad_id=sp["[PAD]"])
    tga.manual_seed(0)
    model = MaskedLM(cfg)
    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, 0.1), lr=3e-3)
    batch_fn = lambda rng: mlm_batches(data, 16, cfg.max_len, rng, sp["[CLS]"], sp["[SEP]"], sp["[PAD]"],  # noqa: E731
                                       sp["[MASK]"], tok.vocab_size, tuple(sp.values()))
    history = Trainer(model, opt, batch_fn, steps=40, schedule=optim.WarmupCosine(opt, 3, 40),
                      progress=False, print_fn=lambda *_: None).fit()
    first, last = np.mean([r["loss"] for r in history[:5]]), np.mean([r["loss"] for r in history[-5:]])
    assert last < first - 0.6, (first, last)


def eval_fn(model):
    # deterministic, and it must not touch the generators the resume test compares
    x = np.arange(64).reshape(2, 32) % model.config.vocab_size
    return model.loss(x, x).item()


def test_resume_equals_uninterrupted(text, tmp_path):
    """8 steps straight == 4 steps, stop, fresh objects, resume 4: same losses, weights, optimizer state.

    Dropout is on, so the backend generator's state has to be restored too."""
    kw = dict(steps=8, eval_every=3, eval_fn=eval_fn, progress=False, print_fn=lambda *_: None, seed=1)
    model, opt, sched, batch_fn = gpt_setup(text, dropout=0.2, steps=8)
    straight = Trainer(model, opt, batch_fn, schedule=sched, out_dir=tmp_path / "a", **kw).fit()

    m1, o1, s1, b1 = gpt_setup(text, dropout=0.2, steps=8)
    first = Trainer(m1, o1, b1, schedule=s1, out_dir=tmp_path / "b", **kw).fit(until=4)
    assert len(first) == 4
    tga.manual_seed(123)                        # the resumed process starts from other random states
    np.random.default_rng(5).random(10)
    m2, o2, s2, b2 = gpt_setup(text, dropout=0.2, steps=8)
    tga.randn(100)                              # ... and has drawn from them
    second = Trainer(m2, o2, b2, schedule=s2, out_dir=tmp_path / "b", **kw).fit(resume=True)

    assert [r["loss"] for r in first + second] == [r["loss"] for r in straight]
    assert [r["lr"] for r in second] == [r["lr"] for r in straight[4:]]
    for (name, a), (_, b) in zip(model.state_dict().items(), m2.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), name
    sa, sb = opt.state_dict()["state"], o2.state_dict()["state"]
    assert all(np.array_equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    # the metrics log of the resumed run reads like the straight one
    assert [r["loss"] for r in read_metrics(tmp_path / "b")] == [r["loss"] for r in straight]


def test_resume_drops_metric_lines_after_the_checkpoint(text, tmp_path):
    kw = dict(steps=6, eval_every=3, progress=False, print_fn=lambda *_: None)
    # a run that died after writing the metrics of step 4, whose last checkpoint is step 3
    m, o, s, b = gpt_setup(text, steps=6)
    Trainer(m, o, b, schedule=s, out_dir=tmp_path / "x", **kw).fit(until=3)
    lines = (tmp_path / "x" / "metrics.jsonl").read_text() + json.dumps({"step": 4, "loss": 9.0}) + "\n"
    (tmp_path / "x" / "metrics.jsonl").write_text(lines)
    m, o, s, b = gpt_setup(text, steps=6)
    Trainer(m, o, b, schedule=s, out_dir=tmp_path / "x", **kw).fit(resume=True)
    assert [r["step"] for r in read_metrics(tmp_path / "x")] == [1, 2, 3, 4, 5, 6]
    assert 9.0 not in [r["loss"] for r in read_metrics(tmp_path / "x")]


def test_nan_weight_trips_the_guard_and_keeps_the_checkpoint(text, tmp_path):
    model, opt, sched, batch_fn = gpt_setup(text, steps=10)
    calls = []

    def poisoned(rng):
        calls.append(1)
        if len(calls) == 6:                     # before step 6: the checkpoint of step 4 is on disk
            model.blocks[0].mlp[0].weight.data[0, 0] = np.nan
        return batch_fn(rng)

    out = tmp_path / "run"
    trainer = Trainer(model, opt, poisoned, steps=10, schedule=sched, eval_every=4, out_dir=out,
                      progress=False, print_fn=lambda *_: None)
    with pytest.raises(NonFiniteError, match=r"step 6: the loss is nan.*checkpoint.*step 4"):
        trainer.fit()
    assert trainer.step == 5
    assert checkpoint.read_extra(out / "checkpoint")["trainer"]["step"] == 4
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4, 5]

    # the checkpoint is whole and finite, and resuming from it finishes the run
    fresh, o2, s2, b2 = gpt_setup(text, steps=10)
    checkpoint.load(out / "checkpoint", fresh, o2)
    assert all(np.isfinite(p.numpy()).all() for p in fresh.parameters())
    history = Trainer(fresh, o2, b2, steps=10, schedule=s2, eval_every=4, out_dir=out, progress=False,
                      print_fn=lambda *_: None).fit(resume=True)
    assert [r["step"] for r in history] == [5, 6, 7, 8, 9, 10]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_gradient_trips_the_guard(text):
    model, opt, sched, batch_fn = gpt_setup(text, steps=5)
    w = model.ln_f.weight
    before = w.numpy().copy()

    def loss_fn(model, batch):
        # sqrt at exactly 0: value 0, gradient inf -> a finite loss with an infinite gradient
        return model.loss(*batch) + (w - w.detach()).sqrt().sum()

    with pytest.raises(NonFiniteError, match="gradient norm"):
        Trainer(model, opt, batch_fn, loss_fn, steps=5, progress=False, print_fn=lambda *_: None).fit()
    assert np.array_equal(w.numpy(), before)    # no update happened


def test_metrics_and_periodic_lines_without_a_terminal(text, tmp_path):
    model, opt, sched, batch_fn = gpt_setup(text, steps=10)
    lines = []
    Trainer(model, opt, batch_fn, steps=10, schedule=sched, eval_fn=eval_fn, eval_every=5, out_dir=tmp_path,
            log_every=2, progress=False, print_fn=lines.append).fit()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == list(range(1, 11))
    assert {"step", "loss", "lr", "grad_norm", "time", "tokens_per_s"} <= set(records[0])
    assert [r["step"] for r in records if "eval_loss" in r] == [5, 10]
    assert [line.split()[1] for line in lines] == ["2/10", "4/10", "5/10", "6/10", "8/10", "10/10"]
    assert "eval_loss" in lines[2] and "eval_loss" not in lines[1] and "tok/s" in lines[0]


def test_resume_without_a_checkpoint_is_a_clear_error(text, tmp_path):
    model, opt, sched, batch_fn = gpt_setup(text)
    with pytest.raises(tga.CheckpointError, match="no checkpoint to resume"):
        Trainer(model, opt, batch_fn, steps=3, out_dir=tmp_path, progress=False).fit(resume=True)
