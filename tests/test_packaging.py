"""Packaging: the models install as tinygrad_attn.models (no top-level `models` to clash with a user's own),
and the installed `tinygrad-attn` runs from any directory, the checkout's root included."""
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_subpackage():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tinygrad_attn").rglob("__init__.py")}
    assert set(config["packages"]) == found | {"tinygrad_attn.models"}
    assert config["package-dir"] == {"tinygrad_attn.models": "models"}


def test_a_user_project_with_its_own_models_package_is_not_shadowed(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("MINE = True\n")
    code = "import models, tinygrad_attn.models as ours; print(models.MINE, ours.GPT.__name__)"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["True", "GPT"], r.stderr
    alone = tmp_path / "empty"
    alone.mkdir()
    r = subprocess.run([sys.executable, "-c", "import models"], cwd=alone, capture_output=True, text=True)
    assert "No module named 'models'" in r.stderr


# ---------------------------------------------------------------- a non-editable install, run from the checkout

def _scratch_venv(where: Path) -> Path:
    """A venv (no pip of its own) that sees this interpreter's site-packages as plain paths: numpy, pip
    and setuptools come from there, but no .pth in them runs, so our editable install stays out."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, capture_output=True)
    python = where / ("Scripts" if os.name == "nt" else "bin") / "python"
    own = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                         capture_output=True, text=True).stdout.strip()
    (Path(own) / "_parent_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def test_the_console_script_of_a_non_editable_install_runs_from_the_checkouts_root(tmp_path):
    # build from a copy, so the build's egg-info/ and build/ stay out of the checkout
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "tinygrad_attn", "models"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                              if (ROOT / name).is_dir() else {}))
    python = _scratch_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                           str(source)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    where = subprocess.run([python, "-c", "import tinygrad_attn.models as m; print(m.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout + where.stderr  # the installed copy
    program = str(python.parent / "tinygrad-attn")
    # the checkout's root holds a tinygrad_attn/ without models/: a `python -m` restart would import that one
    assert (ROOT / "tinygrad_attn").is_dir() and not (ROOT / "tinygrad_attn" / "models").exists()
    out = tmp_path / "run"
    for argv in (["--help"], ["sample", "--help"],
                 ["train", "gpt", "--preset", "tiny", "--steps", "2", "--d-model", "16", "--n-layers", "1",
                  "--n-heads", "2", "--seq-len", "16", "--eval-every", "2", "--no-sample", "--out", str(out)],
                 ["sample", "--out", str(out), "--max-new-tokens", "5", "--seed", "0"]):
        r = subprocess.run([program, *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert r.returncode == 0, f"tinygrad-attn {' '.join(argv)} in {ROOT}:\n{r.stdout}\n{r.stderr}"
        assert "No module named" not in r.stderr
    assert (out / "checkpoint" / "checkpoint.json").is_file()
