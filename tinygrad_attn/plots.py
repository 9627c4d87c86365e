"""PNG plots for studying a model: attention heatmaps per head, gradient norms by layer and head, loss curves.

    from tinygrad_attn import plots
    plots.plot_attention(cap.attention_weights["blocks.0.attn"], tokens, "attn.png")
    plots.plot_grad_norms(cap.layer_grad_norms(), "grads.png")
    plots.plot_head_grad_norms(cap.head_grad_norms(), "heads.png")
    plots.plot_loss_curve("runs/gpt", "loss.png")        # reads runs/gpt/metrics.jsonl

Needs matplotlib (`pip install 'tinygrad_attn[plot]'`). Figures are drawn on their own
Agg canvas, never through pyplot, so no window opens and the process's matplotlib
backend is left alone (a notebook keeps its inline backend). The PNG is figsize * dpi
pixels (no tight bounding box), and every function returns the path it wrote.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .run_dir import read_metrics_file

INSTALL_HINT = "pip install 'tinygrad_attn[plot]'"


def _figure(figsize, dpi, layout="constrained"):
    """A Figure on an Agg canvas (imports matplotlib here, so the package works without it)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"tinygrad_attn.plots needs matplotlib, which is not installed: {INSTALL_HINT}") from e
    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, format="png")
    return path


def _as_array(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)


def plot_attention(weights, tokens=None, path="attention.png", query_tokens=None, batch: int = 0, heads=None,
                   title: str | None = None, cols: int = 4, annotate: bool | None = None, figsize=None,
                   dpi: int = 100) -> Path:
    """Heatmaps of attention weights, one panel per head: rows are queries, columns keys.

    `weights`: (Tq, Tk), (H, Tq, Tk) or (B, H, Tq, Tk) (item `batch` is drawn), NumPy or
    Tensor. `tokens` label the keys (and the queries, unless `query_tokens` is given).
    `heads` picks some heads. `annotate` writes each weight in its cell (default: when T <= 10).
    """
    w = _as_array(weights).astype(np.float64)
    if w.ndim == 4:
        w = w[batch]
    elif w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise ValueError(f"plot_attention: weights must be (Tq, Tk), (H, Tq, Tk) or (B, H, Tq, Tk), got {w.shape}")
    head_ids = list(range(w.shape[0])) if heads is None else list(heads)
    w = w[head_ids]
    n_q, n_k = w.shape[1:]
    keys = None if tokens is None else [str(t) for t in tokens]
    queries = keys if query_tokens is None else [str(t) for t in query_tokens]
    if keys is not None and len(keys) != n_k:
        raise ValueError(f"plot_attention: {len(keys)} tokens for {n_k} keys (weights {w.shape[1:]})")
    if queries is not None and len(queries) != n_q:
        raise ValueError(f"plot_attention: {len(queries)} query tokens for {n_q} queries (weights {w.shape[1:]})")
    annotate = max(n_q, n_k) <= 10 if annotate is None else annotate
    n = len(head_ids)
    ncols = max(1, min(cols, n))
    nrows = math.ceil(n / ncols)
    if figsize is None:
        cell = max(2.6, 0.32 * max(n_q, n_k) + 1.2)
        figsize = (ncols * cell + 0.8, nrows * cell + (0.4 if title else 0.0))
    fig = _figure(figsize, dpi)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).reshape(-1)
    image = None
    for ax, h, panel in zip(axes, head_ids, w):
        image = ax.imshow(panel, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_title(f"head {h}", fontsize=9)
        if keys is not None:
            ax.set_xticks(range(n_k), keys, rotation=90, fontsize=7)
        if queries is not None:
            ax.set_yticks(range(n_q), queries, fontsize=7)
        ax.set_xlabel("key", fontsize=8)
        ax.set_ylabel("query", fontsize=8)
        if annotate:
            for i in range(n_q):
                for j in range(n_k):
                    ax.text(j, i, f"{panel[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if panel[i, j] < 0.6 else "black")
    for ax in axes[n:]:
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=list(axes[:n]), shrink=0.8, label="attention weight")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_grad_norms(norms: dict, path="grad_norms.png", title: str = "gradient norm by layer", log: bool = True,
                    figsize=None, dpi: int = 100) -> Path:
    """A horizontal bar per entry of `norms` (name -> float), in the given order, top to bottom.

    Takes `cap.grad_norms()` (per parameter), `cap.layer_grad_norms()` (per layer) or
    `cap.output_grad_norms()` (dL/d(layer output)). `log`: a log-scale axis, since norms
    of different layers often differ by orders of magnitude.
    """
    if not norms:
        raise ValueError("plot_grad_norms: no gradient norms given (did backward run?)")
    names, values = list(norms), np.array([float(v) for v in norms.values()])
    if figsize is None:
        figsize = (7.0, 0.9 + 0.28 * len(names))
    fig = _figure(figsize, dpi)
    ax = fig.subplots()
    y = np.arange(len(names))
    ax.barh(y, values, color="tab:blue")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    if log and np.all(values > 0):
        ax.set_xscale("log")
    ax.set_xlabel("L2 norm of the gradient")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_head_grad_norms(head_norms: dict, path="head_grad_norms.png", title: str = "gradient norm per head",
                         figsize=None, dpi: int = 100, log: bool = False) -> Path:
    """A layers x heads heatmap of `cap.head_grad_norms()` (layer -> (H,) norms), values written in.

    `log`: a logarithmic colour scale, for rows whose norms differ by orders of magnitude
    (before and after training), which a linear scale from 0 draws as one black row."""
    if not head_norms:
        raise ValueError("plot_head_grad_norms: no head norms given (did backward run?)")
    layers = list(head_norms)
    rows = [np.asarray(head_norms[k], dtype=np.float64).reshape(-1) for k in layers]
    width = max(r.size for r in rows)
    grid = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        grid[i, :r.size] = r
    if figsize is None:   # wide enough for the title too
        figsize = (max(2.5 + 0.7 * width, 1.0 + 0.075 * len(title)), 1.0 + 0.45 * len(rows))
    fig = _figure(figsize, dpi)
    ax = fig.subplots()
    if log:
        from matplotlib.colors import LogNorm
        positive = grid[np.isfinite(grid) & (grid > 0)]
        norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
        image = ax.imshow(grid, cmap="magma", aspect="auto", norm=norm)
    else:   # from 0: a ratio of colours is a ratio of norms
        image = ax.imshow(grid, cmap="magma", aspect="auto", vmin=0.0)
    ax.set_xticks(range(width), [f"head {h}" for h in range(width)], fontsize=7)
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    bright = image.norm(grid)   # where each cell sits on the colour scale, 0..1
    for i in range(grid.shape[0]):
        for j in range(width):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=6,
                        color="white" if bright[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="L2 norm (log scale)" if log else "L2 norm")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def read_metrics(source) -> list:
    """The records of a training log: a run directory (its metrics.jsonl), a .jsonl file, or a list of dicts."""
    if isinstance(source, (list, tuple)):
        return list(source)
    path = Path(source)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"read_metrics: no training log at {path} (train writes metrics.jsonl into its --out)")
    return read_metrics_file(path)


def plot_loss_curve(source, path="loss.png", title: str = "training loss", smooth: float = 0.9, log: bool = False,
                    figsize=(7.0, 4.0), dpi: int = 100) -> Path:
    """Training loss per step (raw, and an exponential moving average with factor `smooth`)
    and held-out loss where it was evaluated, from a metrics.jsonl (see `read_metrics`)."""
    records = read_metrics(source)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    if not train and not evals:
        raise ValueError("plot_loss_curve: the log has no 'loss' or 'eval_loss' entries")
    fig = _figure(figsize, dpi)
    ax = fig.subplots()
    if train:
        steps, losses = np.array(train, dtype=np.float64).T
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=1, label="train loss")
        ema, avg = np.empty_like(losses), 0.0
        for i, v in enumerate(losses):
            avg = smooth * avg + (1 - smooth) * v
            ema[i] = avg / (1 - smooth ** (i + 1))   # bias-corrected (as in Adam): no lag toward 0 early on
        ax.plot(steps, ema, color="tab:blue", linewidth=2, label=f"train loss (EMA {smooth})")
    if evals:
        steps, losses = np.array(evals, dtype=np.float64).T
        ax.plot(steps, losses, "o-", color="tab:orange", label="held-out loss")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_curves(x, curves: dict, path="curves.png", xlabel: str = "", ylabel: str = "", title: str = "",
                logx: bool = False, logy: bool = False, figsize=(6.0, 4.0), dpi: int = 100) -> Path:
    """Lines y(x), one per entry of `curves` (label -> values): for small experiments such as
    gradient size against d_k, or softmax sensitivity against the logit scale."""
    if not curves:
        raise ValueError("plot_curves: no curves given")
    fig = _figure(figsize, dpi)
    ax = fig.subplots()
    for label, y in curves.items():
        ax.plot(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), "o-", label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_matrices(panels: dict, path="matrices.png", title: str = "", row_labels=None, cols: int = 4,
                  figsize=None, dpi: int = 100) -> Path:
    """One heatmap per entry of `panels` (name -> 2-D array, or (array, xlabel, ylabel)), each with its own
    colour scale: a diverging map centred on 0 for signed values (so the sign reads at a glance), viridis
    from the minimum otherwise. `row_labels` (e.g. the tokens) label the rows of panels with that many rows."""
    if not panels:
        raise ValueError("plot_matrices: no panels given")
    items = [(name, *(spec if isinstance(spec, tuple) else (spec, "", ""))) for name, spec in panels.items()]
    n = len(items)
    ncols = max(1, min(cols, n))
    nrows = math.ceil(n / ncols)
    # fixed margins: constrained layout took seconds for a dozen panels with colour bars
    fig = _figure(figsize or (4.4 * ncols, 3.6 * nrows + (0.4 if title else 0.0)), dpi, layout=None)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).reshape(-1)
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.08, top=0.93 if title else 0.97, wspace=0.45, hspace=0.5)
    for ax, (name, a, xlabel, ylabel) in zip(axes, items):
        a = _as_array(a).astype(np.float64)
        if a.ndim != 2:
            raise ValueError(f"plot_matrices: panel {name!r} must be 2-D, got shape {a.shape}")
        finite = a[np.isfinite(a)]
        signed = finite.size and finite.min() < 0 < finite.max()
        if signed:
            top = np.abs(finite).max()
            image = ax.imshow(a, cmap="RdBu_r", vmin=-top, vmax=top, aspect="auto")
        else:
            image = ax.imshow(a, cmap="viridis", aspect="auto")
        ax.set_title(f"{name}  {a.shape}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if row_labels is not None and a.shape[0] == len(row_labels):
            ax.set_yticks(range(a.shape[0]), [str(t) for t in row_labels], fontsize=7)
        if row_labels is not None and a.shape[1] == len(row_labels) and a.shape[0] == a.shape[1]:
            ax.set_xticks(range(a.shape[1]), [str(t) for t in row_labels], rotation=90, fontsize=7)
        fig.colorbar(image, ax=ax, shrink=0.8, label="value (0 at white)" if signed else "value")
    for ax in axes[n:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_attributions(methods: dict, tokens, path="attributions.png", title: str = "", figsize=None,
                      dpi: int = 100) -> Path:
    """Side by side, one bar chart per method (name -> (T,) scores per input token), tokens top to bottom.

    Takes attribution.gradient_x_input, integrated_gradients and a row of attention_rollout.
    Each panel has its own scale: the methods do not share units (logit vs. attention share).
    """
    tokens = [str(t) for t in tokens]
    if not methods:
        raise ValueError("plot_attributions: no attributions given")
    for name, scores in methods.items():
        if _as_array(scores).shape != (len(tokens),):
            raise ValueError(f"plot_attributions: {name!r} has shape {_as_array(scores).shape}, "
                             f"expected one score per token ({len(tokens)},)")
    if figsize is None:
        figsize = (3.0 * len(methods), 0.9 + 0.3 * len(tokens))
    fig = _figure(figsize, dpi)
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharey=True))
    y = np.arange(len(tokens))
    for ax, (name, scores) in zip(axes, methods.items()):
        scores = _as_array(scores).astype(float)
        ax.barh(y, scores, color=np.where(scores >= 0, "tab:red", "tab:blue"))
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set_title(name, fontsize=9)
    axes[0].set_yticks(y, tokens, fontsize=8)
    axes[0].invert_yaxis()
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
