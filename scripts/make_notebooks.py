"""Write examples/notebooks/NAME.ipynb, outputs stripped, from each scripts/notebooks/NAME.py (run: python scripts/make_notebooks.py).

A source is a plain Python file in the "percent" format that Jupytext, VS Code and Spyder read:
`# %%` opens a code cell, `# %% [markdown]` a markdown cell whose lines are comments.
Each notebook calls the library's public functions; its source file is its whole text.
tests/test_notebooks.py checks each stored notebook equals its source, carries no outputs, and runs.
"""
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "scripts" / "notebooks"
NOTEBOOKS = ROOT / "examples" / "notebooks"
CODE, MARKDOWN = "# %%", "# %% [markdown]"


def cells(source: str) -> list:
    """The cells of a percent-format source: (kind, text) in order; text before the first marker is dropped."""
    found = []
    for line in source.splitlines():
        if line.strip() in (CODE, MARKDOWN):
            found.append(("md" if line.strip() == MARKDOWN else "code", []))
        elif found:
            found[-1][1].append(line[2:] if found[-1][0] == "md" and line.startswith("# ")
                                else "" if found[-1][0] == "md" and line == "#" else line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in found]


def notebook(source_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
                for kind, text in cells(source_path.read_text())]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"   # fixed ids: regenerating an unchanged source changes no byte
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def sources() -> list:
    return sorted(SOURCES.glob("*.py"))


def stored_name(source_path: Path) -> Path:
    return NOTEBOOKS / (source_path.stem + ".ipynb")


if __name__ == "__main__":
    for path in sources():
        nbformat.write(notebook(path), stored_name(path))
        print(stored_name(path).relative_to(ROOT))
    sys.exit(0)
