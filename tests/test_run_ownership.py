"""The run directory belongs to the trainer: what it did not write is never deleted or replaced,
--overwrite loses nothing until the new run has a checkpoint, and every failure is one line."""
import hashlib
import os
from pathlib import Path

import pytest

from tinygrad_attn import checkpoint
from tinygrad_attn.models import cli, run_owner
from test_cli_hardening import SMALL, one_error_line, run, run_copy, text_file, trained  # noqa: F401 (fixtures)


def tree(path: Path) -> dict:
    """name -> sha256 of every file under `path` (links by their target), to compare a directory byte for byte."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*")) if p.name != ".lock"}


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_directory_holding_files_of_others_is_refused_and_left_untouched(capsys, tmp_path, text_file, overwrite):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "checkpoint").mkdir()                       # another tool's checkpoint/ (no checkpoint of ours)
    (out / "checkpoint" / "model.pt").write_bytes(b"weights of another tool")
    before = tree(out)
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--steps", 1, "--out", out, "--data", text_file,
                     *(["--overwrite"] if overwrite else []))
    line = one_error_line(err)
    assert rc == 2 and "did not write" in line and "thesis.tex" in line and "checkpoint" in line
    assert tree(out) == before and sorted(os.listdir(out)) == ["checkpoint", "thesis.tex"]


def test_a_file_added_to_a_finished_run_is_refused_too(capsys, run_copy, text_file):
    (run_copy / "notes.txt").write_text("mine")
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--steps", 2, "--out", run_copy, "--data", text_file,
                     "--overwrite")
    assert rc == 2 and "notes.txt" in one_error_line(err) and (run_copy / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("mistake", [("--seq-len", 4096), ("--batch-size", 10**6)])
def test_overwrite_with_a_mistake_found_late_keeps_the_finished_run_byte_for_byte(capsys, run_copy, text_file,
                                                                               monkeypatch, mistake):
    before = tree(run_copy)
    argv = [a for a in SMALL if a not in ("--seq-len", 16)] if mistake[0] == "--seq-len" else list(SMALL)
    rc, _, err = run(capsys, "train", "gpt", *argv, *mistake, "--steps", 2, "--out", run_copy, "--data", text_file,
                     "--overwrite")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    after = tree(run_copy)
    after.pop(run_owner.MARKER, None)   # the marker is the trainer's claim, added to a run from before it
    before.pop(run_owner.MARKER, None)
    assert after == before and not list(run_copy.glob(run_owner.ASIDE_PREFIX + "*"))


def test_overwrite_that_succeeds_replaces_the_run_and_leaves_nothing_aside(capsys, run_copy, text_file):
    old_step = checkpoint.read_extra(run_copy / "checkpoint")["trainer"]["step"]
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--steps", old_step + 2, "--out", run_copy, "--data", text_file,
                     "--overwrite")
    assert rc == 0, err
    assert checkpoint.read_extra(run_copy / "checkpoint")["trainer"]["step"] == old_step + 2
    assert not list(run_copy.glob(run_owner.ASIDE_PREFIX + "*"))


def test_an_overwrite_killed_before_its_first_checkpoint_gives_the_old_run_back(capsys, run_copy):
    before = tree(run_copy)
    aside = run_copy / (run_owner.ASIDE_PREFIX + "killed")   # what replacing() had moved when the process died
    aside.mkdir()
    for name in run_owner.RUN_ENTRIES:
        if (run_copy / name).exists():
            (run_copy / name).replace(aside / name)
    (run_copy / "tokenizer.json").write_text("{}")          # the new run's start, never finished
    messages = []
    run_owner.recover(run_copy, messages.append)
    assert tree(run_copy) == before and "is back" in messages[0]


def test_an_internal_bug_is_one_line_exit_1_with_a_hint_to_report_it(capsys, trained, monkeypatch):
    monkeypatch.setattr(cli, "cmd_sample", lambda args: {}["missing"])
    rc, out, err = run(capsys, "sample", "--out", trained)
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and "internal error: KeyError" in lines[0] and "report" in lines[0]
    monkeypatch.setenv(cli.DEBUG_ENV_VAR, "1")
    with pytest.raises(KeyError):
        cli.main(["sample", "--out", str(trained)])


def test_running_out_of_memory_is_one_line_exit_2_and_no_run_directory(capsys, tmp_path, text_file, monkeypatch):
    from tinygrad_attn.models.decoder import GPT

    def too_big(self, config):
        raise MemoryError
    monkeypatch.setattr(GPT, "__init__", too_big)
    out = tmp_path / "run"
    rc, _, err = run(capsys, "train", "gpt", *SMALL, "--steps", 1, "--out", out, "--data", text_file)
    assert rc == 2 and "out of memory" in one_error_line(err) and not out.exists()


def test_a_link_planted_at_the_metrics_log_never_writes_into_its_target(capsys, run_copy, tmp_path, text_file):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_copy / "metrics.jsonl").unlink()
    (run_copy / "metrics.jsonl").symlink_to(victim)
    with pytest.warns(UserWarning, match="not a JSON record"):   # the victim's line is not a record: dropped
        rc, _, err = run(capsys, "train", "gpt", "--resume", "--steps", 6, "--out", run_copy)
    # the log is rewritten in place of the link (a rename replaces the link, not its target)
    assert rc == 0, err
    assert victim.read_text() == "precious\n" and not (run_copy / "metrics.jsonl").is_symlink()


def test_the_metrics_log_is_never_appended_through_a_link(tmp_path):
    from tinygrad_attn.errors import UnsafeFileError
    from tinygrad_attn.files import open_append
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        open_append(tmp_path / "metrics.jsonl", "metrics log")
    assert victim.read_text() == "precious\n"


def test_an_absurd_size_is_refused_with_its_numbers_before_anything_is_allocated(capsys, tmp_path, text_file):
    out = tmp_path / "run"
    for flag, value in (("--batch-size", 10**9), ("--n-layers", 10**7)):
        rc, _, err = run(capsys, "train", "gpt", *SMALL, flag, value, "--steps", 1, "--out", out, "--data", text_file)
        line = one_error_line(err)
        assert rc == 2 and "GiB" in line and "available" in line and not out.exists()
