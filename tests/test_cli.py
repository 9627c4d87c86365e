"""The tinygrad-attn command line (train, sample, fill-mask, eval) and the example scripts, on tiny presets."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_attn.data import load_shakespeare
from tinygrad_attn.train import read_metrics
from tinygrad_attn.models.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "hamlet.txt"
    path.write_text(load_shakespeare()["hamlet"][:40_000], encoding="utf-8")
    return str(path)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_sample_eval_gpt(capsys, tmp_path, text_file):
    out = tmp_path / "gpt"
    rc, stdout, _ = run(capsys, "train", "gpt", "--preset", "tiny", "--steps", 6, "--eval-every", 3,
                        "--out", out, "--data", text_file)
    assert rc == 0, stdout
    assert "--- sample" in stdout and "eval_loss" in stdout
    assert (out / "checkpoint" / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3, 4, 5, 6]

    args = ("sample", "--out", out, "--prompt", "HAMLET.", "--max-new-tokens", 30, "--seed", 3)
    rc, first, _ = run(capsys, *args)
    assert rc == 0 and first.startswith("HAMLET.") and len(first) > 30
    assert run(capsys, *args)[1] == first                       # seeded
    assert run(capsys, *args, "--no-cache")[1] == first         # the cache changes nothing

    rc, stdout, _ = run(capsys, "eval", "--out", out, "--batches", 2)
    assert rc == 0 and "perplexity" in stdout and "step 6" in stdout

    # resume to more steps: the log continues where it stopped
    rc, stdout, _ = run(capsys, "train", "gpt", "--out", out, "--resume", "--steps", 8, "--no-sample")
    assert rc == 0, stdout
    assert [r["step"] for r in read_metrics(out)] == list(range(1, 9))


def test_train_mlm_and_fill_mask(capsys, tmp_path, text_file):
    out = tmp_path / "mlm"
    rc, stdout, _ = run(capsys, "train", "mlm", "--preset", "tiny", "--steps", 4, "--eval-every", 4,
                        "--out", out, "--data", text_file, "--tokenizer", "bpe", "--vocab-size", 300)
    assert rc == 0, stdout
    assert "[MASK] 1:" in stdout
    rc, stdout, _ = run(capsys, "fill-mask", "--out", out, "--top-k", 3, "To be or not to [MASK] .")
    assert rc == 0 and stdout.count("[MASK] 1:") == 1 and len(stdout.splitlines()[-1].split()) == 2 + 2 * 3
    from tinygrad_attn.models.cli import corpus_words
    words = corpus_words(Path(text_file).read_text(encoding="utf-8"))
    answers = stdout.splitlines()[-1].split()[2::2]
    assert all(" " + a in words for a in answers), answers                # whole words of the training text
    rc, stdout, _ = run(capsys, "fill-mask", "--out", out, "--top-k", 3, "--all-tokens", "To be or not to [MASK] .")
    assert rc == 0 and stdout.count("[MASK] 1:") == 1
    rc, stdout, _ = run(capsys, "eval", "--out", out, "--batches", 2)
    assert rc == 0 and "masked-token loss" in stdout
    acc, base = re.search(r"top-1 accuracy ([0-9.]+)%; unigram baseline \(always .*\) ([0-9.]+)%", stdout).groups()
    assert 0 <= float(acc) <= 100 and 0 < float(base) < 100
    rc, stdout, _ = run(capsys, "train", "mlm", "--preset", "tiny", "--steps", 2, "--eval-every", 2, "--no-sample",
                        "--out", tmp_path / "wwm", "--data", text_file, "--tokenizer", "bpe", "--vocab-size", 300,
                        "--whole-word-mask")
    assert rc == 0 and read_metrics(tmp_path / "wwm")[-1]["eval_acc"] >= 0
    rc, words, _ = run(capsys, "eval", "--out", tmp_path / "wwm", "--batches", 2, "--whole-word-mask")
    rc2, tokens, _ = run(capsys, "eval", "--out", tmp_path / "wwm", "--batches", 2)
    assert rc == rc2 == 0 and "top-1 accuracy" in words and words.splitlines()[0] != tokens.splitlines()[0]
    rc, _, err = run(capsys, "train", "gpt", "--preset", "tiny", "--whole-word-mask", "--out", tmp_path / "g")
    assert rc == 2 and "--whole-word-mask is for mlm runs" in err


def test_bundled_corpus_default_data(capsys, tmp_path):
    rc, stdout, _ = run(capsys, "train", "gpt", "--preset", "tiny", "--steps", 2, "--out", tmp_path / "g",
                        "--no-sample")
    assert rc == 0 and "training" in stdout and "held-out tokens" in stdout


def test_clear_errors(capsys, tmp_path, text_file):
    rc, _, err = run(capsys, "sample", "--out", tmp_path / "nothing")
    assert rc == 2 and "no trained run" in err
    rc, _, err = run(capsys, "train", "gpt", "--resume", "--out", tmp_path / "nothing")
    assert rc == 2 and "no checkpoint" in err
    rc, _, err = run(capsys, "train", "gpt", "--data", tmp_path / "missing.txt", "--out", tmp_path / "x")
    assert rc == 2 and "missing.txt" in err

    out = tmp_path / "gpt"
    tiny = ("--preset", "tiny", "--steps", 1, "--out", out, "--data", text_file, "--no-sample")
    assert run(capsys, "train", "gpt", *tiny)[0] == 0
    rc, _, err = run(capsys, "train", "gpt", *tiny)
    assert rc == 2 and "--resume" in err and "--overwrite" in err
    assert run(capsys, "train", "gpt", *tiny, "--overwrite")[0] == 0
    rc, _, err = run(capsys, "fill-mask", "--out", out, "a [MASK]")
    assert rc == 2 and "needs a run of kind mlm" in err
    rc, _, err = run(capsys, "train", "mlm", "--resume", "--out", out)
    assert rc == 2 and "holds a gpt run" in err


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "tinygrad_attn.models.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "fill-mask" in r.stdout


@pytest.mark.parametrize("script", ["train_gpt.py", "train_mlm.py", "swap_backend.py", "user_gpt.py"])
def test_examples_run_quick(script):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "loss" in r.stdout
