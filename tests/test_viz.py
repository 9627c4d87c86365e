"""tinygrad_attn.viz.draw_graph (DOT text, rendering, errors) and the op name in a tensor's repr."""
import os
import re
import shutil
import stat

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import viz


def _head():
    """One attention head written out: its graph has the ops a learner expects to see."""
    rng = np.random.default_rng(0)
    x = tga.tensor(rng.standard_normal((5, 8)))
    wq, wk, wv = (tga.tensor(rng.standard_normal((8, 4)), requires_grad=True) for _ in range(3))
    q, k, v = x @ wq, x @ wk, x @ wv
    out = ((q @ k.T) * 0.5).softmax(-1) @ v
    return out.sum(), {"x": x, "Wq": wq, "Wk": wk, "Wv": wv}


def _nodes(dot):
    """{node id: label} and the list of (from, to) edges of DOT text written by draw_graph."""
    labels = dict(re.findall(r'^\s+(\w+) \[.*label="(.*)"\];$', dot, re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+);$", dot, re.M)
    return labels, edges


def test_dot_names_every_op_tensor_shape_and_edge():
    loss, names = _head()
    labels, edges = _nodes(viz.draw_graph(loss, names=names))
    ops = sorted(label for node, label in labels.items() if node.startswith("op"))
    assert ops == sorted(["MatMul"] * 5 + ["Permute", "Mul", "Softmax", "Sum"])
    wq = next(lab for lab in labels.values() if lab.startswith("Wq"))
    assert wq == "Wq\\n(8, 4) float64"
    assert any(lab.startswith("output\\n() float64") for lab in labels.values())
    # every op has its inputs going in and exactly one output coming out
    for node in (n for n in labels if n.startswith("op")):
        assert sum(1 for a, b in edges if a == node) == 1
        assert any(b == node for a, b in edges)
    # tensors: the loss, the 4 named, 5 matmul outputs, permute/mul/softmax outputs, and the constant 0.5
    assert len(labels) - len(ops) == 1 + len(names) + 5 + 3 + 1
    assert any(lab == "() float64" for lab in labels.values())
    # the graph is left intact: backward still works after drawing
    loss.backward()
    assert names["Wq"].grad is not None


def test_grad_norms_are_the_norms_of_the_real_gradients():
    loss, names = _head()
    labels, _ = _nodes(viz.draw_graph(loss, show_grad_norms=True, names=names))
    loss.backward()
    for name in ("Wq", "Wk", "Wv"):
        label = next(lab for lab in labels.values() if lab.startswith(name + "\\n"))
        shown = float(re.search(r"\|grad\| ([0-9.e+-]+)", label).group(1))
        assert shown == pytest.approx(np.linalg.norm(names[name].grad.numpy()), rel=1e-3)
    x_label = next(lab for lab in labels.values() if lab.startswith("x\\n"))
    assert "|grad|" not in x_label                     # x needs no gradient


def test_a_freed_graph_and_a_graph_less_tensor_give_clear_errors():
    loss, _ = _head()
    loss.backward()
    with pytest.raises(tga.GraphError, match="draw_graph: .*freed.*retain_graph=True"):
        viz.draw_graph(loss)
    with pytest.raises(tga.GraphError, match="does not require grad"):
        viz.draw_graph(tga.ones(3), show_grad_norms=True)
    with pytest.raises(ValueError, match="format must be one of"):
        viz.draw_graph(tga.ones(3), path="g.jpg", format="jpg")


def test_without_graphviz_the_error_says_how_to_install_and_the_dot_text_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    loss, _ = _head()
    with pytest.raises(viz.GraphvizNotFoundError, match="apt-get install graphviz") as err:
        viz.draw_graph(loss, path=tmp_path / "head.svg")
    assert isinstance(err.value, tga.TinygradAttnError)
    assert not (tmp_path / "head.svg").exists()
    assert (tmp_path / "head.dot").read_text().startswith("digraph")
    text = viz.draw_graph(loss, path=tmp_path / "only.dot", format="dot")
    assert (tmp_path / "only.dot").read_text() == text


def test_a_failing_dot_leaves_no_half_written_file(tmp_path, monkeypatch):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax' >&2\necho partial > \"$3\"\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(shutil, "which", lambda name: str(fake))
    loss, _ = _head()
    with pytest.raises(tga.TinygradAttnError, match="dot -Tpng. failed with status 1: Error: syntax"):
        viz.draw_graph(loss, path=tmp_path / "head.png", format="png")
    assert sorted(os.listdir(tmp_path)) == ["dot"]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is a system package (apt-get install graphviz)")
def test_renders_svg_with_graphviz(tmp_path):
    loss, names = _head()
    viz.draw_graph(loss, show_grad_norms=True, path=tmp_path / "head.svg", names=names)
    svg = (tmp_path / "head.svg").read_text()
    assert "<svg" in svg and "Softmax" in svg and "Wq" in svg


def test_repr_names_the_op_that_made_the_tensor():
    a = tga.ones(2, 3, requires_grad=True)
    assert "grad_fn=MatMul" in repr(a @ tga.ones(3, 2))
    assert "grad_fn=Softmax" in repr(a.softmax(-1))
    assert "requires_grad=True" in repr(a) and "grad_fn" not in repr(a)
    with tga.no_grad():
        assert "grad_fn" not in repr(a @ tga.ones(3, 2))
