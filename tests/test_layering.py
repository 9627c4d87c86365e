"""The layers of DESIGN.md, checked on the source: only backend/ knows NumPy from CuPy,
the engine never imports the library above it, and importing the package changes nothing
in the process."""
import ast
import io
import pathlib
import os
import subprocess
import sys
import tokenize

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tinygrad_attn"
ENGINE = ["autograd.py", "tensor.py", "ops"]
LIBRARY = {"nn", "optim", "checkpoint", "train", "inspect", "models", "tokenizers", "data", "plots", "representations", "attribution"}


def _files(*parts):
    for part in parts:
        path = PACKAGE / part
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


def _imported_modules(path):
    """Absolute names of what a file imports (relative imports resolved)."""
    package = ["tinygrad_attn"] + list(path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] if node.level else [])
            base = ".".join(p for p in (base, node.module or "") if p)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _code_tokens(path):
    """The tokens of the code (comments and docstrings say what they like)."""
    kinds = (tokenize.NAME, tokenize.OP, tokenize.STRING)
    return [t.string for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline) if t.type in kinds]


def _device_specific(tokens):
    for i, tok in enumerate(tokens):
        if tok == "cupy" or tok.strip("'\"") == "cupy":
            yield "a reference to CuPy"
        if tok in ("==", "!=") and i + 1 < len(tokens) and tokens[i + 1].strip("'\"") in ("cpu", "cuda"):
            yield "a choice by device name"
        if tokens[i:i + 3] == ["xp", "is", "np"]:
            yield "a choice by array namespace"


@pytest.mark.parametrize("path", [p for p in _files(".") if "backend" not in p.parts], ids=lambda p: p.name)
def test_only_the_backend_names_cupy_or_picks_by_device_name(path):
    found = list(_device_specific(_code_tokens(path)))
    assert not found, f"{path.relative_to(PACKAGE)} holds {found[0]}: that belongs in backend/"


@pytest.mark.parametrize("path", list(_files(*ENGINE)), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_engine_never_imports_the_library(path):
    for name in _imported_modules(path):
        top = name.split(".")[:2]
        assert not (top[0] == "models" or (top[0] == "tinygrad_attn" and top[1:] and top[1] in LIBRARY)), \
            f"{path.relative_to(PACKAGE)} imports {name}"


@pytest.mark.parametrize("path", list(_files("backend")), ids=lambda p: p.name)
def test_the_backend_imports_nothing_above_it(path):
    for name in _imported_modules(path):
        if name.startswith("tinygrad_attn."):
            # errors, dtypes (the promotion rules) and shapes import nothing of the package: a floor below the backend
            assert name.startswith(("tinygrad_attn.backend", "tinygrad_attn.errors", "tinygrad_attn.dtypes", "tinygrad_attn.shapes")), \
                f"backend/{path.name} imports {name}"


def test_library_code_reaches_the_backend_through_the_public_accessor():
    for path in _files("."):
        source = path.read_text()
        assert "._" + "backend()" not in source and "Tensor._" + "make" not in source, path


def test_import_changes_no_process_setting():
    """Process-wide settings (malloc, OpenBLAS's spin) come with the CPU backend's first use, never with import."""
    code = ("import tinygrad_attn as tga, tinygrad_attn.backend.host_memory as h, "
            "tinygrad_attn.backend.cpu_threads as c; print(h._applied, c._spin_shortened)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"})
    assert out.stdout.strip() == "None False"
