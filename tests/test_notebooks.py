"""The notebooks in examples/notebooks: each one is its source in scripts/notebooks, stored without outputs,
and runs top to bottom (under 60 s)."""
import importlib.util
import json
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "examples" / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_they_are_stored_without_outputs():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: strip its outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="the [notebooks] extra is not installed")
    nbformat = pytest.importorskip("nbformat", reason="the [notebooks] extra is not installed")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.perf_counter() - start < 60, f"{path.name} took over 60 s"


def _make_notebooks():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_notebook_is_written_from_its_source():
    nbformat = pytest.importorskip("nbformat", reason="the [notebooks] extra is not installed")
    make = _make_notebooks()
    assert sorted(make.stored_name(p) for p in make.sources()) == NOTEBOOKS, \
        "a notebook without a source in scripts/notebooks, or a source never written: run scripts/make_notebooks.py"
    for source in make.sources():
        stored = make.stored_name(source).read_text()
        assert stored == nbformat.writes(make.notebook(source)) + "\n", \
            f"{source.name} changed since {make.stored_name(source).name} was written: run scripts/make_notebooks.py"
