"""Packaging: the models install as tinygrad_attn.models (no top-level `models` to clash with a user's own)."""
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
