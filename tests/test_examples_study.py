"""The study examples run to completion with --quick and print what they promise (run in-process with runpy)."""
import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def run_example(name, args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def _check_pngs(out, tmp_path, names):
    if _have_matplotlib():
        for name in names:
            assert (tmp_path / name).stat().st_size > 1000, name
    else:
        assert "pip install 'tinygrad_attn[plot]'" in out


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """A study model trained for a few steps, shared by the examples' tests through --run."""
    import contextlib
    import io
    from tinygrad_attn.models.study import study_model
    out = tmp_path_factory.mktemp("study")
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        study = study_model(out=out, quick=True)       # no run yet: trained on the spot, and it says so
    assert study.trained and "no --run given: training a small mlm here (30 steps" in said.getvalue()
    return str(out)


def test_self_attention_walkthrough_on_trained_weights(study_run, tmp_path, monkeypatch, capsys):
    out = run_example("self_attention_walkthrough.py", ["--quick", "--run", study_run, "--out", str(tmp_path)],
                      monkeypatch, capsys)
    assert "weights: TRAINED weights: mlm run" in out and "who attends to whom (TRAINED weights)" in out
    for step in ("X  shape (12, 64)", "LN(X)  shape (12, 64)", "Qh (head 0 of 4)  shape (12, 16)", "S (head 0 of 4)", "S/sqrt(dh) (head 0 of 4)", "A (head 0 of 4)", "Oh (head 0 of 4)",
                 "concat  shape", "Y  shape"):
        assert step in out, step
    diffs = [float(d) for d in re.findall(r"max \|difference\| = ([0-9.e+-]+)", out)]
    assert len(diffs) >= 15 and max(diffs) < 1e-9       # by hand == the model's own values and gradients, float64
    assert out.count(": ok") == 5                          # a finite-difference check per step, then the whole layer
    assert float(re.search(r"largest \|row sum\|: ([0-9.e+-]+)", out).group(1)) < 1e-12
    _check_pngs(out, tmp_path, ["forward_steps.png", "backward_steps.png", "attention_heads.png"])


def test_self_attention_walkthrough_labels_random_weights(study_run, tmp_path, monkeypatch, capsys):
    out = run_example("self_attention_walkthrough.py", ["--quick", "--random", "--run", study_run, "--out",
                                                        str(tmp_path)], monkeypatch, capsys)
    assert "weights: UNTRAINED weights (random init" in out and "who attends to whom (UNTRAINED" in out
    assert "TRAINED weights" not in out.replace("UNTRAINED weights", "")


def test_bpe_weaknesses_are_measured_on_the_tokenizer_in_use(study_run, monkeypatch, capsys):
    out = run_example("bpe_weaknesses.py", ["--run", study_run], monkeypatch, capsys)
    from tinygrad_attn.tokenizers import load_tokenizer
    tok = load_tokenizer(f"{study_run}/tokenizer.json")
    pieces = tok.tokens("1234567")
    assert f"'1234567' -> {len(pieces)} tokens" in out and len(pieces) >= 4   # digits are rarely merged
    assert "'<0xF0>' | '<0x9F>' | '<0x99>' | '<0x82>'" in out                # 🙂: four bytes, each readable
    assert f"'the' {tok.tokens('the')} vs" in out and f"' the' {tok.tokens(' the')}" in out
    assert re.search(r"mean cos of the \d+ pairs with no id in common: [-0-9.]+; between different words", out)


def test_backprop_through_attention(tmp_path, monkeypatch, capsys):
    out = run_example("backprop_through_attention.py", ["--quick", "--out", str(tmp_path)], monkeypatch, capsys)
    assert "dL/dscores max |.| 0.0 (exactly zero)" in out
    assert re.search(r"dL/dk and dL/dv of padded tokens max \|\.\| 0\.0;", out)
    accuracy = int(re.search(r"copy accuracy on a fresh batch (\d+)%", out).group(1))
    assert accuracy >= 90
    ratio = re.search(r"dL/dS shrinks: (\d+)x smaller .* against ([0-9.]+)x with the scale", out)
    assert float(ratio.group(1)) >= 2 and float(ratio.group(2)) < 1.5
    assert (tmp_path / "train" / "metrics.jsonl").exists()
    _check_pngs(out, tmp_path, ["loss.png", "attention_trained.png", "grad_norms.png", "head_grad_norms.png",
                                "scaling.png", "saturation.png"])


@pytest.mark.filterwarnings("ignore")
def test_contextual_embeddings_loads_the_model_trained_earlier(study_run, monkeypatch, capsys):
    args = ["--quick", "--model-out", study_run]                 # trained by the fixture: loaded, not retrained
    out = run_example("contextual_embeddings.py", args, monkeypatch, capsys)
    assert "loading the mlm trained earlier in" in out and "training a small" not in out
    assert "weights: TRAINED" in out
    # the table row does not see the context: identical vectors in both sentences
    assert re.search(r"table \|\s+1\.000\s+1\.000\s+0\.000", out)
    # with BPE " play" sits at different positions, so layer 0 differs, and the script says why instead of "dist 0"
    layer0 = float(re.search(r"0 embedding \|\s+[-0-9.]+\s+[-0-9.]+\s+([0-9.]+)", out).group(1))
    assert layer0 > 0 and "layer 0 adds the position embedding" in out and "yet: dist 0" not in out
    dist = float(re.search(r"2 block \|\s+[-0-9.]+\s+[-0-9.]+\s+([0-9.]+)", out).group(1))
    assert dist > 0                                         # a block mixes in the context
    assert "cls pooling" in out


def test_contextual_embeddings_says_dist_0_only_when_it_is_0(monkeypatch, capsys):
    """A char tokenizer puts "play" at the same positions in both sentences: there layer 0 is identical."""
    import numpy as np
    import tinygrad_attn as tga
    from tinygrad_attn.models import MaskedLM, MLMConfig
    from tinygrad_attn.models.config import MLM_SPECIALS
    from tinygrad_attn.models.study import StudyModel
    from tinygrad_attn.tokenizers import CharTokenizer
    import tinygrad_attn.models.study as study_module
    tok = CharTokenizer.train("The king will play the fool. Go see a fine play tonight. Give me some light, away!"
                              "The queen shall", MLM_SPECIALS)
    tga.manual_seed(0)
    model = MaskedLM(MLMConfig(vocab_size=tok.vocab_size, pad_id=0, max_len=40, d_model=16, n_heads=2, n_layers=2))
    monkeypatch.setattr(study_module, "study_model",
                        lambda *a, **k: StudyModel("mlm", model.eval(), tok, "UNTRAINED weights (test)", False))
    out = run_example("contextual_embeddings.py", ["--random"], monkeypatch, capsys)
    assert re.search(r"0 embedding \|\s+1\.000\s+1\.000\s+0\.000", out)
    assert "same tokens at the same positions ([15, 16, 17, 18]), so it knows nothing of the sentence yet: dist 0." in out
    assert np.isfinite(float(re.search(r"2 block \|\s+[-0-9.]+\s+[-0-9.]+\s+([0-9.]+)", out).group(1)))
