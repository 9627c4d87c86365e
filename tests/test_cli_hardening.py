"""The command line as a new user meets it: wrong tokenizer, moved or changed data, a second
trainer, Ctrl-C, a finished run, and every mistake ending in one line with exit code 2."""
import io
import json
import os
import re
import shlex
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import checkpoint
from tinygrad_attn.data import load_shakespeare
from tinygrad_attn.filelock import try_lock
from tinygrad_attn.tokenizers import CharTokenizer
from tinygrad_attn.train import Trainer, read_metrics
from tinygrad_attn.models import cli

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("--preset", "tiny", "--d-model", 16, "--n-layers", 1, "--n-heads", 2, "--seq-len", 16, "--no-sample")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "hamlet.txt"
    path.write_text(load_shakespeare()["hamlet"][:20_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, text_file):
    """A finished 4-step gpt run (copy it before changing it)."""
    out = tmp_path_factory.mktemp("runs") / "gpt"
    assert cli.main([str(a) for a in ("train", "gpt", *SMALL, "--steps", 4, "--eval-every", 2, "--out", out,
                                      "--data", text_file)]) == 0
    return out


@pytest.fixture
def run_copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "gpt")
    return tmp_path / "gpt"


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygrad-attn: error: "), err
    return lines[0]


# ---------------------------------------------------------------- 6. the tokenizer must match the model

def test_a_tokenizer_that_does_not_match_the_checkpoint_is_refused(capsys, run_copy):
    CharTokenizer.train("abcdefghij0123456789 ").save(run_copy / "tokenizer.json")   # 21 tokens
    stamp = os.stat(run_copy / "checkpoint" / "checkpoint.json").st_mtime_ns
    for argv in (("train", "gpt", "--resume", "--steps", 6), ("sample",), ("eval",)):
        rc, _, err = run(capsys, *argv, "--out", run_copy)
        line = one_error_line(err)
        assert rc == 2 and "tokenizer.json" in line and "does not match" in line, line
    assert os.stat(run_copy / "checkpoint" / "checkpoint.json").st_mtime_ns == stamp    # not overwritten


@pytest.mark.parametrize("content", [b'{"type": "char", "chars": [', b"\xff\xfe garbage"])
def test_a_corrupted_tokenizer_names_the_file(capsys, run_copy, content):
    (run_copy / "tokenizer.json").write_bytes(content)
    for argv in (("train", "gpt", "--resume", "--steps", 6), ("sample",), ("eval",)):
        rc, _, err = run(capsys, *argv, "--out", run_copy)
        assert rc == 2 and str(run_copy / "tokenizer.json") in one_error_line(err)


# ---------------------------------------------------------------- 8. data: absolute path and hash

def test_relative_data_is_found_from_another_directory_and_changes_are_refused(capsys, tmp_path, monkeypatch,
                                                                               text_file):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(text_file, work / "input.txt")
    monkeypatch.chdir(work)
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--steps", 2, "--out", tmp_path / "run", "--data", "input.txt")
    assert rc == 0, err
    data = checkpoint.read_extra(tmp_path / "run" / "checkpoint")["data"]
    assert data["path"] == str(work / "input.txt") and len(data["sha256"]) == 64

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "input.txt").write_text("some other text " * 500)       # same name, other content
    monkeypatch.chdir(elsewhere)
    rc, out, err = run(capsys, "eval", "--out", tmp_path / "run", "--batches", 1)
    assert rc == 0 and "perplexity" in out, err
    rc, _, err = run(capsys, "train", "gpt", "--resume", "--steps", 3, "--out", tmp_path / "run")
    assert rc == 0, err

    (work / "input.txt").write_text(load_shakespeare()["lear"][:20_000])  # the data changes under the run
    for argv in (("train", "gpt", "--resume", "--steps", 4), ("eval",)):
        rc, _, err = run(capsys, *argv, "--out", tmp_path / "run")
        line = one_error_line(err)
        assert rc == 2 and str(work / "input.txt") in line and "changed" in line and "--allow-data-change" in line
    rc, _, err = run(capsys, "train", "gpt", "--resume", "--steps", 4, "--out", tmp_path / "run",
                     "--allow-data-change")
    assert rc == 0 and "warning" in err and [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3, 4]


# ---------------------------------------------------------------- 9-11. lock, Ctrl-C, finished runs

def test_a_second_trainer_is_told_who_holds_the_run(capsys, run_copy):
    other = try_lock(run_copy / ".lock", "pid 777 on elsewhere")
    try:
        rc, _, err = run(capsys, "train", "gpt", "--resume", "--steps", 6, "--out", run_copy)
    finally:
        other.release()
    assert rc == 2 and "pid 777 on elsewhere" in one_error_line(err)


def test_ctrl_c_saves_and_prints_a_resume_command_that_works(capsys, tmp_path, monkeypatch, text_file):
    real_step = Trainer.train_step

    def step_then_ctrl_c(self):
        record = real_step(self)
        if self.step == 3:
            signal.raise_signal(signal.SIGINT)
        return record

    monkeypatch.setattr(Trainer, "train_step", step_then_ctrl_c)
    out = tmp_path / "gpt"
    argv = ["train", "gpt", *map(str, SMALL), "--steps", "8", "--eval-every", "4", "--out", str(out),
            "--data", str(text_file), "--lr", "0.002"]
    rc, stdout, _ = run(capsys, *argv)
    assert rc == 130
    assert checkpoint.read_extra(out / "checkpoint")["trainer"]["step"] == 3
    command = stdout.split("resume with: ")[-1].splitlines()[0]
    assert command.startswith("tinygrad-attn train gpt") and "--resume" in command and "--lr 0.002" in command
    monkeypatch.setattr(Trainer, "train_step", real_step)
    rc, stdout, _ = run(capsys, *shlex.split(command)[1:])
    assert rc == 0 and [r["step"] for r in read_metrics(out)] == list(range(1, 9))


def test_resuming_a_finished_run_says_there_is_nothing_to_do(capsys, run_copy):
    rc, out, _ = run(capsys, "train", "gpt", "--resume", "--out", run_copy)
    assert rc == 0 and "already trained to step 4 of 4" in out and "saved to" not in out


# ---------------------------------------------------------------- 4. a forged config is refused before any build

@pytest.mark.parametrize("field, value, why", [("seq_len", 25_000_000, "seq_len"), ("d_model", "32", "d_model"),
                                               ("n_heads", 0, "n_heads"), ("n_heads", 3, "divisible"),
                                               ("vocab_size", 10**9, "vocab_size")])
def test_a_forged_config_is_a_checkpoint_error_before_the_model_is_built(capsys, run_copy, monkeypatch, field,
                                                                        value, why):
    ck = run_copy / "checkpoint"
    meta = json.loads((ck / "checkpoint.json").read_text())
    meta["extra"]["model_config"][field] = value
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    meta["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(body))
    (ck / "checkpoint.json").write_text(json.dumps(meta))
    monkeypatch.setattr("tinygrad_attn.models.decoder.GPT.__init__", lambda *a, **k: pytest.fail("built a model"))
    for argv in (("sample",), ("eval",), ("train", "gpt", "--resume", "--steps", 6)):
        rc, _, err = run(capsys, *argv, "--out", run_copy)
        line = one_error_line(err)
        assert rc == 2 and why in line and "checkpoint" in line, line


@pytest.fixture(scope="module")
def trained_two_layers(tmp_path_factory, text_file):
    """A 2-step gpt run of 2 blocks: lowering its n_layers leaves every name the config expects present."""
    out = tmp_path_factory.mktemp("runs") / "gpt2"
    small = list(SMALL)
    small[small.index("--n-layers") + 1] = 2
    assert cli.main([str(a) for a in ("train", "gpt", *small, "--steps", 2, "--eval-every", 2, "--out", out,
                                      "--data", text_file)]) == 0
    return out


@pytest.mark.parametrize("section, field, value, why", [
    ("model_config", "n_layers", 1, "n_layers"), ("model_config", "n_layers", 3, "n_layers"),
    ("model_config", "dropout", float("nan"), "dropout"), ("train_config", "lr", float("nan"), "lr"),
    ("train_config", "weight_decay", float("nan"), "weight_decay")])
def test_a_forged_layer_count_or_a_nan_setting_is_refused_before_the_model_is_built(
        capsys, trained_two_layers, tmp_path, monkeypatch, section, field, value, why):
    run_dir = tmp_path / "gpt2"
    shutil.copytree(trained_two_layers, run_dir)
    ck = run_dir / "checkpoint"
    meta = json.loads((ck / "checkpoint.json").read_text())
    assert meta["extra"]["model_config"]["n_layers"] == 2
    meta["extra"][section][field] = value
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    meta["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(body))
    (ck / "checkpoint.json").write_text(json.dumps(meta))
    monkeypatch.setattr("tinygrad_attn.models.decoder.GPT.__init__", lambda *a, **k: pytest.fail("built a model"))
    for argv in (("sample",), ("eval",), ("train", "gpt", "--resume", "--steps", 4)):
        rc, _, err = run(capsys, *argv, "--out", run_dir)
        line = one_error_line(err)
        assert rc == 2 and why in line and "checkpoint" in line, line


@pytest.mark.parametrize("record", [["shakespeare"], 7, None, {"path": 3}])
def test_a_forged_data_record_is_one_line_naming_it(capsys, run_copy, record):
    ck = run_copy / "checkpoint"
    meta = json.loads((ck / "checkpoint.json").read_text())
    meta["extra"]["data"] = record
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    meta["meta_sha256"] = checkpoint._sha256(checkpoint._canonical(body))
    (ck / "checkpoint.json").write_text(json.dumps(meta))
    rc, _, err = run(capsys, "eval", "--out", run_copy)
    line = one_error_line(err)
    assert rc == 2 and "data" in line and "--data PATH" in line, line


# ---------------------------------------------------------------- 12. one error boundary

def bad_data(tmp_path, kind):
    path = tmp_path / f"{kind}.txt"
    if kind == "empty":
        path.write_text("  \n")
    elif kind == "binary":
        path.write_bytes(b"ok text \xff\xfe\x80 more")
    elif kind == "short":
        path.write_text("To be.")
    elif kind == "dir":
        path.mkdir()
    return path


@pytest.mark.parametrize("argv, why", [
    (("--steps", 0), "--steps"), (("--batch-size", 0), "--batch-size"), (("--dropout", 2), "--dropout"),
    (("--tokenizer", "bpe", "--vocab-size", 100), "--vocab-size"), (("--lr", -1), "--lr"),
    (("--eval-every", 0), "--eval-every"), (("--n-heads", 3), "divisible"),
    (("--data", "@empty"), "empty"), (("--data", "@binary"), "UTF-8"), (("--data", "@short"), "too short"),
    (("--data", "@dir"), "directory"), (("--out", "@file"), "not a directory"),
])
def test_train_mistakes_are_one_line_exit_2_and_no_run_directory(capsys, tmp_path, argv, why):
    (tmp_path / "file").write_text("x")
    fixed = []
    for a in argv:
        if isinstance(a, str) and a.startswith("@"):
            a = tmp_path / "file" if a == "@file" else bad_data(tmp_path, a[1:])
        fixed.append(a)
    out = tmp_path / "run"
    base = ["train", "gpt", *SMALL] + ([] if "--out" in argv else ["--out", out])
    rc, _, err = run(capsys, *base, *fixed)
    line = one_error_line(err)
    assert rc == 2 and why in line, line
    assert not out.exists()
    if "--data" in argv and argv[1] != "@dir":
        assert str(tmp_path) in line                         # the file is named


def test_an_unwritable_out_is_found_before_any_work(capsys, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(cli, "_probe_writable", refuse)
    monkeypatch.setattr(cli, "load_corpus", lambda *a: pytest.fail("did work before checking --out"))
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--out", tmp_path / "run")
    assert rc == 2 and "Permission denied" in one_error_line(err) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, why", [(("--temperature", -1), "--temperature"), (("--top-k", 0), "--top-k"),
                                       (("--top-p", 1.5), "--top-p"), (("--max-new-tokens", 0), "--max-new-tokens")])
def test_sample_mistakes(capsys, trained, argv, why):
    rc, _, err = run(capsys, "sample", "--out", trained, *argv)
    assert rc == 2 and why in one_error_line(err)


def test_a_closed_pipe_ends_sample_quietly(capsys, trained, monkeypatch):
    class ClosedPipe(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    rc = cli.main(["sample", "--out", str(trained), "--max-new-tokens", "5"])
    monkeypatch.undo()
    assert rc == 0 and capsys.readouterr().err == ""


def test_a_mask_beyond_max_len_is_a_clear_error(capsys, tmp_path, text_file):
    out = tmp_path / "mlm"
    assert run(capsys, "train", "mlm", *SMALL, "--steps", 1, "--out", out, "--data", text_file)[0] == 0
    rc, _, err = run(capsys, "fill-mask", "--out", out, "word " * 40 + "[MASK]")
    assert rc == 2 and "max_len" in one_error_line(err)


# ---------------------------------------------------------------- 13. options: help, README, --version, sizes

def all_options():
    parser = cli.build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                yield sub.prog, action


def test_every_option_has_help_with_its_default_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for prog, action in all_options():
        assert action.help, (prog, action.option_strings)
        if action.nargs != 0:
            assert "default" in action.help, (prog, action.option_strings)
        assert action.option_strings[-1] in readme, (prog, action.option_strings)


def test_version_and_size_flags_and_the_base_on_cpu_warning(capsys, tmp_path, text_file):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and tga.__version__ in capsys.readouterr().out
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--steps", 1, "--out", tmp_path / "g", "--data", text_file)
    config = checkpoint.read_extra(tmp_path / "g" / "checkpoint")["model_config"]
    assert rc == 0 and (config["d_model"], config["n_layers"], config["n_heads"], config["seq_len"]) == (16, 1, 2, 16)
    rc, _, err = run(capsys, "train", "gpt", "--preset", "base", "--data", tmp_path / "missing.txt",
                     "--out", tmp_path / "b")
    assert rc == 2 and "warning: --preset base" in err and "missing.txt" in err


# ---------------------------------------------------------------- 14. one CLI for all kinds, load_run public

def test_the_cli_has_no_per_kind_branches_and_examples_do_not_import_it():
    assert 'kind == "' not in (ROOT / "models" / "cli.py").read_text()
    for example in (ROOT / "examples").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) .*$", example.read_text(), re.M)
        assert not [line for line in imports if "cli" in line], example


def test_load_run_is_public(trained):
    from tinygrad_attn.models import load_run
    run_ = load_run(trained)
    assert run_.kind == "gpt" and run_.model.config.d_model == 16 and run_.tokenizer.vocab_size > 10


def test_a_symlinked_checkpoint_directory_survives_training_and_resume(capsys, tmp_path, text_file):
    out, storage = tmp_path / "gpt", tmp_path / "big-disk" / "ck"
    storage.mkdir(parents=True)
    out.mkdir()
    (out / "checkpoint").symlink_to(storage, target_is_directory=True)
    common = ("--out", out, "--eval-every", 1, "--data", text_file)
    assert run(capsys, "train", "gpt", *SMALL, "--steps", 3, *common)[0] == 0
    assert run(capsys, "train", "gpt", "--resume", "--steps", 5, *common[:2])[0] == 0
    assert (out / "checkpoint").is_symlink() and checkpoint.read_extra(storage)["trainer"]["step"] == 5
    assert sorted(os.listdir(out)) == [".lock", ".tinygrad-attn-run", "checkpoint", "metrics.jsonl", "tokenizer.json",
                                       "tokens"]


# ---------------------------------------------------------------- inputs that used to end in a traceback

@pytest.mark.parametrize("command", [("sample", "--max-new-tokens", 3), ("eval",)])
def test_weights_holding_nan_are_named_before_anything_is_computed(capsys, trained, monkeypatch, command):
    from tinygrad_attn.models import run as run_module
    real_load = run_module.checkpoint.load

    def load_then_poison(path, model, **kwargs):
        result = real_load(path, model, **kwargs)
        weight = dict(model.named_parameters())["blocks.0.attn.qkv.weight"]
        weight.data[0, 0] = np.nan
        return result
    monkeypatch.setattr(run_module.checkpoint, "load", load_then_poison)
    rc, out, err = run(capsys, command[0], "--out", trained, *command[1:])
    line = one_error_line(err)
    assert rc == 2 and out == "" and "blocks.0.attn.qkv.weight" in line and "NaN" in line


def test_a_tiny_temperature_samples_the_most_likely_token(capsys, trained):
    rc, out, err = run(capsys, "sample", "--out", trained, "--max-new-tokens", 5, "--temperature", "1e-320")
    greedy = run(capsys, "sample", "--out", trained, "--max-new-tokens", 5, "--temperature", 0)
    assert rc == 0 and err == "" and out == greedy[1]


def test_logits_that_are_not_finite_are_refused_by_the_sampler():
    from tinygrad_attn.models.decoder import sample_token
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="not all finite"):
            sample_token(np.array([0.0, bad, 1.0]), np.random.default_rng(0), 0.8)


@pytest.mark.parametrize("text, escapes, expected", [("café\\n日", True, "café\n日"), ("café\\t", False, "café\\t"),
                                                      ("tab\\there \\\\ back", True, "tab\there \\ back")])
def test_prompt_escapes_change_only_the_escapes(text, escapes, expected):
    assert cli._prompt(text, escapes) == expected


@pytest.mark.parametrize("text, escapes, why", [("a\\x", True, "bad escape"), ("a\udcff", False, "not valid UTF-8"),
                                                ("a\udcff", True, "not valid UTF-8")])
def test_a_bad_prompt_is_one_clear_error(capsys, trained, text, escapes, why):
    rc, _, err = run(capsys, "sample", "--out", trained, "--prompt", text, *(["--escapes"] if escapes else []))
    assert rc == 2 and why in one_error_line(err)


def test_eval_warns_when_the_held_out_text_is_mostly_unknown_tokens(capsys, trained, tmp_path):
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("ЖЖЖЖ ЩЩЩЩ ЮЮЮЮ " * 2000, encoding="utf-8")
    rc, out, err = run(capsys, "eval", "--out", trained, "--data", foreign)  # the gpt's characters have [UNK]
    assert rc == 0 and "[UNK]" in err and "% of the held-out tokens" in err
    rc, out, err = run(capsys, "eval", "--out", trained)
    assert rc == 0 and "[UNK]" not in err


def test_sampled_text_streams_as_it_is_drawn_and_is_the_text_of_the_ids(capsys, trained, monkeypatch):
    from tinygrad_attn.models.decoder import GPT
    seen, real_generate = [], GPT.generate

    def watching(self, *args, on_token=None, **kwargs):
        def each(token):
            seen.append(len(capsys.readouterr().out))  # how much had reached stdout before this token
            on_token(token)
        return real_generate(self, *args, on_token=each, **kwargs)
    monkeypatch.setattr(GPT, "generate", watching)
    rc, _, err = run(capsys, "sample", "--out", trained, "--prompt", "HAMLET.", "--max-new-tokens", 6, "--seed", 1)
    assert rc == 0 and err == ""
    assert seen[0] > 0 and all(n > 0 for n in seen[1:])  # the prompt, then each token, printed before the next
    monkeypatch.undo()
    run_ = cli.load_run(trained)
    ids = run_.model.generate(run_.tokenizer.encode("HAMLET."), 6, temperature=0.8, top_k=40, seed=1)
    rc, out, _ = run(capsys, "sample", "--out", trained, "--prompt", "HAMLET.", "--max-new-tokens", 6, "--seed", 1)
    assert out == run_.tokenizer.decode(ids) + "\n"


def test_ctrl_c_while_sampling_keeps_the_text_printed_so_far(capsys, trained, monkeypatch):
    from tinygrad_attn.models.decoder import GPT

    def interrupted(self, prompt_ids, *args, on_token=None, **kwargs):
        for token in prompt_ids[:3]:
            on_token(token)
        raise KeyboardInterrupt
    monkeypatch.setattr(GPT, "generate", interrupted)
    rc, out, err = run(capsys, "sample", "--out", trained, "--prompt", "HAMLET.")
    assert rc == 130 and err == "" and out == "HAMLET." + "HAM" + "\n"


def test_resume_refuses_a_changed_setting_and_names_each_change(capsys, run_copy):
    rc, _, err = run(capsys, "train", "gpt", "--resume", "--steps", 6, "--out", run_copy, "--d-model", 32, "--lr", 0.5)
    line = one_error_line(err)
    assert rc == 2 and "--d-model 32 (saved: 16)" in line and "--lr 0.5" in line
    before = sorted(p.name for p in run_copy.iterdir())
    rc, _, err = run(capsys, "train", "gpt", "--resume", "--steps", 6, "--out", run_copy, *SMALL)
    assert rc == 0, err   # the same flags as the run was started with are no change
    assert sorted(p.name for p in run_copy.iterdir()) == before
