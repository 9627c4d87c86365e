"""draw_graph: the graph that produced a tensor, as Graphviz DOT text (and SVG/PNG when `dot` is installed).

    from tinygrad_attn.viz import draw_graph
    dot_text = draw_graph(loss)                                   # DOT text, nothing else needed
    draw_graph(loss, show_grad_norms=True, path="graph.svg")      # rendered by Graphviz's `dot`

Boxes are tensors (name if given, shape, dtype, and with `show_grad_norms` the norm of
d(tensor)/d(that tensor)); ellipses are the ops (`Function` class names, as in a
tensor's `grad_fn=`). Arrows follow the forward pass: inputs -> op -> output.

Draw before `backward()` frees the graph, or call `backward(retain_graph=True)`.
Gradient norms are computed here, by one extra backward with the graph kept, so
intermediate tensors need no `retain_grad()`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .errors import GraphError, TinygradAttnError
from .factories import ones_like
from .files import atomic_writer
from .gradients import grad as _grad

RENDERED_FORMATS = ("svg", "png", "pdf")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
                "conda: conda install graphviz) or pass format='dot' to keep only the DOT text")


class GraphvizNotFoundError(TinygradAttnError, RuntimeError):
    """Rendering to SVG/PNG asked for Graphviz's `dot` program, and it is not on PATH."""


def _walk(root):
    """(tensors, ops): every tensor and op the root was computed from (iterative: deep graphs are fine)."""
    tensors, ops, seen, stack = [], [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        tensors.append(t)
        ctx = t._ctx
        if ctx is None:
            continue
        if ctx.inputs is None:
            raise GraphError(f"draw_graph: the graph of {type(ctx).__name__} was freed by backward(); draw before "
                             "backward, or call backward(retain_graph=True)")
        ops.append((ctx, t))
        stack.extend(ctx.inputs)
    tensors.reverse()
    ops.reverse()
    return tensors, ops


def _grad_norms(root, tensors) -> dict:
    """id(tensor) -> |d(root)/d(tensor)| for every tensor in the graph that requires grad."""
    if not root.requires_grad:
        raise GraphError("draw_graph(show_grad_norms=True): the tensor does not require grad, so it has no graph")
    wanted = [t for t in tensors if t.requires_grad]
    seed = None if root.size == 1 else ones_like(root)   # a non-scalar root: the gradient of its sum
    grads = _grad(root, wanted, grad_outputs=seed, retain_graph=True, allow_unused=True)
    return {id(t): float(np.linalg.norm(g.numpy().astype(np.float64))) for t, g in zip(wanted, grads)
            if g is not None}


def _label(*parts: str) -> str:
    """A quoted DOT label, one line per non-empty part."""
    escaped = (p.replace("\\", "\\\\").replace('"', '\\"') for p in parts if p)
    return '"' + "\\n".join(escaped) + '"'


def to_dot(root, show_grad_norms: bool = False, names: dict | None = None) -> str:
    """The DOT text of the graph that produced `root` (see the module docstring)."""
    tensors, ops = _walk(root)
    norms = _grad_norms(root, tensors) if show_grad_norms else {}
    label_of = {id(t): name for name, t in (names or {}).items()}
    node = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    lines = ["digraph tinygrad_attn {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for t in tensors:
        norm = f"|grad| {norms[id(t)]:.4g}" if id(t) in norms else ""
        fill = "lightblue" if t.requires_grad and t._ctx is None else "white"   # leaves that learn stand out
        name = label_of.get(id(t), "output" if t is root else "")
        lines.append(f"  {node[id(t)]} [shape=box, style=filled, fillcolor={fill}, "
                     f"label={_label(name, f'{tuple(t.shape)} {t.dtype}', norm)}];")
    for i, (ctx, out) in enumerate(ops):
        lines.append(f"  op{i} [shape=ellipse, style=filled, fillcolor=lightyellow, label={_label(type(ctx).__name__)}];")
        lines.extend(f"  {node[id(t)]} -> op{i};" for t in ctx.inputs)
        lines.append(f"  op{i} -> {node[id(out)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_graph(tensor, show_grad_norms: bool = False, path: str | os.PathLike | None = None,
               format: str = "svg", names: dict | None = None) -> str:
    """Draw the graph that produced `tensor`; return its DOT text.

    `names`: {label: tensor} for tensors worth naming (e.g. dict(model.named_parameters())).
    With `path`, write the graph there: format "dot" writes the DOT text; "svg", "png" or
    "pdf" run Graphviz's `dot` (an optional extra: without it, GraphvizNotFoundError says
    how to install it, and the DOT text is still written next to `path` as .dot).
    """
    if format not in RENDERED_FORMATS + ("dot",):
        raise ValueError(f"draw_graph: format must be one of {RENDERED_FORMATS + ('dot',)}, got {format!r}")
    dot_text = to_dot(tensor, show_grad_norms, names)
    if path is None:
        return dot_text
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "dot":
        path.write_text(dot_text)
        return dot_text
    program = shutil.which("dot")
    if program is None:
        fallback = path.with_suffix(".dot")
        fallback.write_text(dot_text)
        raise GraphvizNotFoundError(f"draw_graph: cannot write {path} as {format}: Graphviz's `dot` program is not "
                                    f"on PATH; the DOT text is in {fallback}. To render, {INSTALL_HINT}")
    # dot writes to its stdout, into our own fresh temporary file: a failed render leaves nothing at `path`
    with atomic_writer(path) as out:
        done = subprocess.run([program, f"-T{format}"], input=dot_text.encode(), stdout=out, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise TinygradAttnError(f"draw_graph: `dot -T{format}` failed with status {done.returncode}: "
                                    f"{done.stderr.decode(errors='replace').strip()}")
    return dot_text
