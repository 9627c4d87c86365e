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


def test_self_attention_walkthrough(tmp_path, monkeypatch, capsys):
    out = run_example("self_attention_walkthrough.py", ["--quick", "--out", str(tmp_path)], monkeypatch, capsys)
    assert "'The' and 'the' share an embedding row" in out
    diffs = [float(d) for d in re.findall(r"max \|difference\| = ([0-9.e+-]+)", out)]
    assert len(diffs) >= 9 and max(diffs) < 1e-9          # hand-written backward == engine, float64
    assert out.count(": ok") == 5                          # four single-head gradchecks + the multi-head one
    _check_pngs(out, tmp_path, ["single_head.png", "multi_head.png"])


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
def test_contextual_embeddings_trains_then_loads(tmp_path, monkeypatch, capsys):
    args = ["--quick", "--out", str(tmp_path / "mlm")]
    out = run_example("contextual_embeddings.py", args, monkeypatch, capsys)
    assert "training a tiny encoder" in out
    # the table and layer 0 do not see the context: identical vectors in both sentences
    assert re.search(r"table \|\s+1\.000\s+1\.000\s+0\.000", out)
    assert re.search(r"0 embedding \|\s+1\.000\s+1\.000\s+0\.000", out)
    dist = float(re.search(r"2 block \|\s+[-0-9.]+\s+[-0-9.]+\s+([0-9.]+)", out).group(1))
    assert dist > 0                                         # a block mixes in the context
    assert "cls pooling" in out
    again = run_example("contextual_embeddings.py", args, monkeypatch, capsys)
    assert "loading the encoder trained in" in again and "training a tiny" not in again
