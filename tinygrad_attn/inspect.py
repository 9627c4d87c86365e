"""Look inside a model as it runs: attention maps, gradients at the scores and Q/K/V, layer outputs, gradient norms.

    from tinygrad_attn import inspect
    with inspect.capture(model) as cap:
        loss = model.loss(x, y)
        loss.backward()
    cap.attention_weights["blocks.0.attn"]   # (B, H, Tq, Tk) NumPy: softmax weights, per head
    cap.score_grads["blocks.0.attn"]         # (B, H, Tq, Tk): dL/dscores (pre-softmax)
    dq, dk, dv = cap.qkv_grads["blocks.0.attn"]   # each (B, H, T, dh): dL/dq, dL/dk, dL/dv
    cap.head_outputs["blocks.0.attn"]        # (B, H, T, dh): each head's weights @ v
    cap.merged_heads["blocks.0.attn"]        # (B, T, d): the heads concatenated, before the output projection
    cap.layer_outputs["blocks.1"]            # (B, T, d): what the block wrote to the residual stream
    cap.grad_norms()                         # {"blocks.0.attn.qkv.weight": 0.31, ...} per parameter
    cap.layer_grad_norms()                   # {"tok_emb": ..., "blocks.0": ..., ...} per layer
    cap.head_grad_norms()                    # {"blocks.0.attn": array of H norms, ...}

How: for every MultiHeadAttention the block sets its `on_qkv` / `on_scores` /
`on_weights` / `on_heads` callbacks, which copy the values and register gradient hooks on those
tensors; for every layer whose output is kept (TransformerBlock and MultiHeadAttention by
default) it wraps that instance's `forward`; every parameter gets a gradient hook, so
`cap.param_grads` holds the gradient of the backward passes run inside the block (not
what `.grad` had accumulated before, and unchanged by a later zero_grad or step).
Hooks only read: they return None, so
the loss and every gradient are bit for bit those of a run without capture. Outside
the block nothing is installed, so it costs nothing; on exit every callback and
`forward` is put back as it was (a capture nests inside another one, or inside a
user's own callbacks, which keep being called).

What is kept is the last forward of each layer inside the block (NumPy copies, on the
host); its gradients arrive when backward runs, inside or after the block (parameter
gradients only inside: their hooks are removed on exit; the norm methods then read
the parameters' live `.grad`). The functions `grad_norms(model)`,
`layer_grad_norms(model)` and `head_grad_norms(model)` read `.grad` without a capture.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from .nn.attention import MultiHeadAttention
from .nn.module import Module
from .nn.transformer import TransformerBlock

DEFAULT_LAYERS = (TransformerBlock, MultiHeadAttention)


def _host(t) -> np.ndarray:
    """A NumPy copy (a CPU tensor's array is the live buffer: later ops must not see our edits or vice versa)."""
    return np.array(t.numpy(), copy=True)


def _name(name: str, module: Module) -> str:
    return name or type(module).__name__


class Capture:
    """What `capture` recorded. Every dict is keyed by the layer's dotted module name.

    attention_scores / attention_weights: (B, H, Tq, Tk) pre- / post-softmax (before dropout).
    score_grads / weight_grads: dL/dscores and dL/dweights, same shape (filled by backward).
    qkv: layer -> (q, k, v), each (B, H, T, dh); qkv_grads: layer -> (dq, dk, dv).
    head_outputs / head_output_grads: each head's weights @ v, (B, H, Tq, dh), and its gradient.
    merged_heads / merged_head_grads: the heads side by side before the output projection (B, Tq, d).
    layer_outputs: layer -> its output (B, T, d); output_grads: layer -> dL/d(output).
    param_grads: parameter name -> its gradient from the backward passes inside the block.
    The norm methods use param_grads when it holds anything, else the live `.grad`.
    """

    def __init__(self, model: Module):
        self.model = model
        self.attention_layers: list[str] = []
        self.output_layers: list[str] = []
        self.attention_scores, self.attention_weights = {}, {}
        self.score_grads, self.weight_grads = {}, {}
        self.qkv, self._qkv_grads = {}, {}
        self.head_outputs, self.head_output_grads = {}, {}
        self.merged_heads, self.merged_head_grads = {}, {}
        self.layer_outputs, self.output_grads = {}, {}
        self.param_grads = {}

    @property
    def qkv_grads(self) -> dict:
        """layer -> (dq, dk, dv), each (B, H, T, dh), for the layers whose three gradients arrived."""
        return {k: tuple(v) for k, v in self._qkv_grads.items() if all(g is not None for g in v)}

    # ---------------------------------------------------------------- recording (called by the hooks)

    def _keep(self, store: dict, grads: dict, name: str, t) -> None:
        store[name] = _host(t)
        grads.pop(name, None)   # a new forward: an older gradient no longer belongs to it
        if t.requires_grad:
            t.register_hook(lambda g: grads.__setitem__(name, _host(g)))

    def _keep_qkv(self, name: str, q, k, v) -> None:
        self.qkv[name] = (_host(q), _host(k), _host(v))
        slots = self._qkv_grads[name] = [None, None, None]
        for i, t in enumerate((q, k, v)):
            if t.requires_grad:
                t.register_hook(lambda g, i=i: slots.__setitem__(i, _host(g)))

    # ---------------------------------------------------------------- gradient norms (read from .grad now)

    def _keep_param_grad(self, name: str, g) -> None:
        g = _host(g)
        previous = self.param_grads.get(name)
        self.param_grads[name] = g if previous is None else previous + g   # two backwards: their sum, as .grad

    def _grads(self):
        return self.param_grads or None

    def grad_norms(self) -> dict:
        return grad_norms(self.model, self._grads())

    def layer_grad_norms(self) -> dict:
        return layer_grad_norms(self.model, self._grads())

    def head_grad_norms(self, by_part: bool = False) -> dict:
        return head_grad_norms(self.model, by_part, self._grads())

    def qkv_grad_norms(self) -> dict:
        """layer -> (3, H) array: the norms of dL/dq, dL/dk, dL/dv per head (over batch, positions, dh)."""
        return {name: np.stack([np.sqrt((g.astype(np.float64) ** 2).sum(axis=(0, 2, 3))) for g in grads])
                for name, grads in self.qkv_grads.items()}

    def output_grad_norms(self) -> dict:
        """layer -> the norm of dL/d(layer output): how much gradient reaches each depth."""
        return {name: float(np.linalg.norm(self.output_grads[name].astype(np.float64)))
                for name in self.output_layers if name in self.output_grads}


def _select_output_layers(model: Module, layers):
    """(name, module) of the layers whose outputs are kept: by class, by dotted name, or both."""
    if layers is None:
        layers = DEFAULT_LAYERS
    classes = tuple(x for x in layers if isinstance(x, type))
    names = {x for x in layers if isinstance(x, str)}
    modules = dict(model.named_modules())
    unknown = sorted(names - set(modules))
    if unknown:
        raise KeyError(f"capture: the model has no sub-module {unknown[0]!r}; "
                       f"known names include {sorted(n for n in modules if n)[:8]}")
    return [(n, m) for n, m in modules.items() if (classes and isinstance(m, classes)) or n in names]


@contextmanager
def capture(model: Module, layers=None, enabled: bool = True):
    """Record attention, Q/K/V, layer outputs and their gradients for forwards run inside the block.

    `layers`: which modules' outputs to keep, as classes and/or dotted names (default
    every TransformerBlock and MultiHeadAttention). `enabled=False` installs nothing
    and yields an empty Capture (a switch for training loops).

    Watched attention layers ask F.scaled_dot_product_attention for their scores and
    weights (see nn/attention.py): the same numbers as an unwatched run to float rounding.
    """
    cap = Capture(model)
    if not enabled:
        yield cap
        return
    restore = []
    try:
        for name, m in model.named_modules():
            if isinstance(m, MultiHeadAttention):
                name = _name(name, m)
                cap.attention_layers.append(name)
                restore.append(_install_attention(cap, name, m))
        for name, m in _select_output_layers(model, layers):
            name = _name(name, m)
            cap.output_layers.append(name)
            restore.append(_wrap_forward(cap, name, m))
        for name, p in model.named_parameters():
            if p.requires_grad:
                restore.append(_hook_param(cap, name, p))
        yield cap
    finally:
        for undo in reversed(restore):
            undo()


def _chain(mine, theirs):
    if theirs is None:
        return mine

    def both(*tensors):
        mine(*tensors)
        theirs(*tensors)
    return both


def _install_attention(cap: Capture, name: str, m: MultiHeadAttention):
    before = (m.on_qkv, m.on_scores, m.on_weights, m.on_heads)
    m.on_qkv = _chain(lambda q, k, v: cap._keep_qkv(name, q, k, v), before[0])
    m.on_scores = _chain(lambda s: cap._keep(cap.attention_scores, cap.score_grads, name, s), before[1])
    m.on_weights = _chain(lambda w: cap._keep(cap.attention_weights, cap.weight_grads, name, w), before[2])

    def keep_heads(heads, merged):
        cap._keep(cap.head_outputs, cap.head_output_grads, name, heads)
        cap._keep(cap.merged_heads, cap.merged_head_grads, name, merged)
    m.on_heads = _chain(keep_heads, before[3])

    def undo():
        m.on_qkv, m.on_scores, m.on_weights, m.on_heads = before
    return undo


def _hook_param(cap: Capture, name: str, p):
    had_hooks = p._hooks is not None
    handle = p.register_hook(lambda g: cap._keep_param_grad(name, g))

    def undo():
        handle.remove()
        if not had_hooks and not p._hooks:
            p._hooks = None   # exactly as before
    return undo


def _wrap_forward(cap: Capture, name: str, m: Module):
    had_own = "forward" in m.__dict__
    own = m.__dict__.get("forward")
    inner = m.forward   # bound method, or an earlier capture's wrapper

    def forward(*args, **kwargs):
        out = inner(*args, **kwargs)
        first = out[0] if isinstance(out, (tuple, list)) else out
        if hasattr(first, "register_hook"):
            cap._keep(cap.layer_outputs, cap.output_grads, name, first)
        return out

    object.__setattr__(m, "forward", forward)   # an instance attribute shadows the class's forward

    def undo():
        if had_own:
            object.__setattr__(m, "forward", own)
        else:
            del m.__dict__["forward"]
    return undo


# -------------------------------------------------------------------- gradient norms of a model

def _read_grads(model: Module, grads) -> dict:
    """name -> float64 gradient array: from `grads` if given, else each parameter's .grad."""
    if grads is None:
        grads = {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}
    return {n: np.asarray(g, dtype=np.float64) for n, g in grads.items()}


def grad_norms(model: Module, grads: dict | None = None) -> dict:
    """parameter name -> L2 norm of its gradient (.grad, or `grads[name]`); those without one are left out."""
    return {n: float(np.sqrt((g * g).sum())) for n, g in _read_grads(model, grads).items()}


def layer_grad_norms(model: Module, grads: dict | None = None) -> dict:
    """Gradient norm per layer, in model order: each TransformerBlock, and each other top-level part.

    A layer's norm is the L2 norm of all its parameters' gradients together, so the
    squares of these add up to the squared global gradient norm.
    """
    blocks = [n for n, m in model.named_modules() if isinstance(m, TransformerBlock) and n]
    norms = grad_norms(model, grads)
    squares = {}
    for n, _ in model.named_parameters():
        if n not in norms:
            continue
        owner = next((b for b in blocks if n.startswith(b + ".")), n.split(".")[0])
        squares[owner] = squares.get(owner, 0.0) + norms[n] ** 2
    return {k: math.sqrt(v) for k, v in squares.items()}


def _head_slices(m: MultiHeadAttention):
    """Per part, the function taking the parameter gradients to a (H, ...) array, one row per head."""
    H, dh, d = m.n_heads, m.head_dim, m.d_model

    def qkv_part(s):
        # fused projection rows: [q | k | v], each split into heads as (H, dh): row = s*d + h*dh + j
        def take(w_grad, b_grad):
            rows = w_grad[s * d:(s + 1) * d].reshape(H, dh, -1)
            sq = (rows ** 2).sum(axis=(1, 2))
            if b_grad is not None:
                sq = sq + (b_grad[s * d:(s + 1) * d].reshape(H, dh) ** 2).sum(axis=1)
            return sq
        return take

    def out_part(w_grad, _b_grad):
        # the output projection reads the merged heads: input column = h*dh + j; its bias belongs to no head
        return (w_grad.reshape(-1, H, dh) ** 2).sum(axis=(0, 2))

    return {"q": (m.qkv, qkv_part(0)), "k": (m.qkv, qkv_part(1)), "v": (m.qkv, qkv_part(2)),
            "out": (m.out_proj, out_part)}


def head_grad_norms(model: Module, by_part: bool = False, grads: dict | None = None) -> dict:
    """Per attention layer, the norm of the slice of its weight gradients that belongs to each head.

    Head h owns the rows of the QKV projection that produce its q, k and v (with their
    biases) and the columns of the output projection that read its output. Returns
    layer -> (H,) array, or with `by_part` layer -> {"q", "k", "v", "out", "total"} of (H,)
    arrays. Summed over heads, the squares give the squared norm of those gradients
    (all of qkv.weight, qkv.bias and out_proj.weight; out_proj.bias is shared by all heads).
    """
    grads = _read_grads(model, grads)
    out = {}
    for name, m in model.named_modules():
        dot = f"{name}." if name else ""
        if not isinstance(m, MultiHeadAttention) or not {dot + "qkv.weight", dot + "out_proj.weight"} <= set(grads):
            continue
        parts = {}
        for part, (linear, take) in _head_slices(m).items():
            which = "qkv" if linear is m.qkv else "out_proj"
            parts[part] = take(grads[f"{dot}{which}.weight"], grads.get(f"{dot}{which}.bias"))
        parts["total"] = sum(parts.values())
        parts = {k: np.sqrt(v) for k, v in parts.items()}
        out[_name(name, m)] = parts if by_part else parts["total"]
    return out
