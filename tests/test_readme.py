"""The README's API tour runs as written, and its MLP really learns."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs_and_the_mlp_learns():
    code = re.search(r"## A tour of the API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    scope = {}
    exec(compile(code.replace("print(", "len("), "README tour", "exec"), scope)
    assert float(scope["loss"]) < 0.69  # below chance (log 2) after 100 SGD steps
    assert scope["weights"].grad.shape == (1, 5, 5)


def test_readme_own_op_example_passes_its_checks():
    code = re.search(r"### Your own op\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    scope = {}
    exec(compile(code.replace("print(", "results = ("), "README own op", "exec"), scope)
    assert scope["results"] == (True, True)
