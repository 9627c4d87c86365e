"""The public functions (imported as `F`): argument checks, composites, and the primitive ops.

Every op is reachable here; Tensor methods forward to these. Arguments are checked
here, before any array work, so that a mistake reads as `matmul: cannot multiply ...`
and not as a NumPy traceback. Composites (mean, var, stack, split, attention, ...)
are written from the primitives in `ops/`, so their gradients come for free.
"""
from __future__ import annotations

import builtins
import math
from collections.abc import Sequence

import numpy as np

from .backend import get_backend
from .errors import DTypeError, ShapeError
from .ops import attention as A
from .ops import convert as C
from .ops import elementwise as E
from .ops import linalg as L
from .ops import nn as N
from .ops import reduce as R
from .ops import shape as S
from .tensor import Tensor, _is_float

# ---------------------------------------------------------------- helpers

# Python-number operands become constant tensors; the same few numbers (0.5, 1, eps, ...)
# recur in every step, so the constants are cached rather than rebuilt per op.
_SCALARS: dict = {}


def _like(x, like: Tensor) -> Tensor:
    """`x` as a Tensor on like's device; Python numbers and arrays take like's float dtype."""
    if isinstance(x, Tensor):
        return x
    backend = like.backend
    if isinstance(x, (int, float, bool)) and _is_float(like.dtype):
        key = (x, type(x), like.dtype, like.device)
        cached = _SCALARS.get(key)
        if cached is None:
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            cached = _SCALARS[key] = Tensor.wrap(backend.xp.asarray(x, dtype=like.dtype), like.device)
        return cached
    arr = backend.asarray(x)
    if arr.dtype == np.float64 and not hasattr(x, "dtype"):
        arr = arr.astype(like.dtype if _is_float(like.dtype) else np.float32)
    return Tensor.wrap(arr, like.device)


def _pair(a, b):
    if not isinstance(a, Tensor):
        a = _like(a, b)
    elif not isinstance(b, Tensor):
        b = _like(b, a)
    return a, b


def _broadcast_error(op, *tensors):
    shapes = " and ".join(str(tuple(t.shape)) for t in tensors)
    return ShapeError(f"{op}: shapes {shapes} cannot be broadcast together (NumPy rules: trailing dims must match or be 1)")


def _binary(cls, op, a, b):
    a, b = _pair(a, b)
    try:
        return cls.apply(a, b)
    except ValueError as e:
        if "broadcast" in str(e):
            raise _broadcast_error(op, a, b) from None
        raise


def _axes(op, axis, dim, ndim):
    """Normalize `axis` (or PyTorch's `dim`) into a sorted tuple of non-negative ints."""
    if dim is not None:
        axis = dim
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -builtins.max(ndim, 1) <= ax < builtins.max(ndim, 1):
            raise ShapeError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dims")
        out.append(int(ax) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else ()


def _axis(op, axis, dim, ndim):
    (ax,) = _axes(op, axis if dim is None else dim, None, ndim) or (0,)
    return ax


def _require_float(op, t):
    if not _is_float(t.dtype):
        raise DTypeError(f"{op}: expected a floating-point tensor, got dtype {t.dtype} with shape {t.shape}")


def _array_on(t: Tensor, value):
    """A raw array (mask, index) on t's device, from a Tensor, array or list."""
    if isinstance(value, Tensor):
        if value.device != t.device:
            from .errors import DeviceError
            raise DeviceError(f"mask/index on {value.device} used with a tensor on {t.device}")
        return value.data
    return t.backend.asarray(value)


def _bool_mask(op, t, mask):
    m = _array_on(t, mask)
    if m.dtype != np.bool_:
        raise DTypeError(f"{op}: mask must be boolean, got dtype {m.dtype} (mask {m.shape}, tensor {t.shape})")
    require_broadcast(op, "mask", m.shape, "the tensor's shape", t.shape)
    return m


def require_broadcast(op, what, shape, target_what, target_shape) -> None:
    """A ShapeError naming the op and both shapes unless `shape` broadcasts to `target_shape`."""
    try:
        np.broadcast_shapes(tuple(shape), tuple(target_shape))
    except ValueError:
        raise ShapeError(f"{op}: {what} of shape {tuple(shape)} does not broadcast to "
                         f"{target_what} {tuple(target_shape)}") from None


# ---------------------------------------------------------------- arithmetic

def add(a, b): return _binary(E.Add, "add", a, b)
def sub(a, b): return _binary(E.Sub, "sub", a, b)
def mul(a, b): return _binary(E.Mul, "mul", a, b)
def div(a, b): return _binary(E.Div, "div", a, b)
def neg(a): return E.Neg.apply(a)


def pow(a, exponent):
    """a ** exponent; a Python-number exponent uses the cheaper PowScalar."""
    if isinstance(a, Tensor) and isinstance(exponent, (int, float)):
        return E.PowScalar.apply(a, exponent=exponent)
    return _binary(E.Pow, "pow", a, exponent)


def exp(x): return E.Exp.apply(x)
def log(x): return E.Log.apply(x)
def sqrt(x): return E.Sqrt.apply(x)
def tanh(x): return E.Tanh.apply(x)
def sigmoid(x): return E.Sigmoid.apply(x)
def relu(x): return E.Relu.apply(x)
def abs(x): return E.Abs.apply(x)
def erf(x): return E.Erf.apply(x)


def gelu(x, approximate="tanh"):
    """GELU: approximate="tanh" (GPT-2, BERT) or "none" (exact, x * Phi(x))."""
    if approximate == "tanh":
        return E.GeluTanh.apply(x)
    if approximate == "none":
        return E.GeluExact.apply(x)
    raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")


def maximum(a, b):
    """Elementwise max; at ties each side gets half the gradient."""
    return _binary(E.Maximum, "maximum", a, b)


def minimum(a, b):
    """Elementwise min; at ties each side gets half the gradient."""
    return _binary(E.Minimum, "minimum", a, b)


def clip(x, min=None, max=None):
    """Clamp into [min, max]; the gradient is 1 inside (ends included), 0 outside."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return E.Clip.apply(x, low=min, high=max)


clamp = clip


def where(cond, a, b):
    """Elements of `a` where `cond` is True, else of `b` (cond is constant, a and b broadcast)."""
    like = a if isinstance(a, Tensor) else b
    if not isinstance(like, Tensor):
        raise TypeError("where: at least one of a and b must be a Tensor")
    a, b = _pair(a, b)
    c = _bool_mask("where", like, cond)
    try:
        return E.Where.apply(a, b, cond=c)
    except ValueError:
        raise ShapeError(f"where: shapes cond {c.shape}, a {a.shape}, b {b.shape} cannot be broadcast together") from None


def masked_fill(x, mask, value):
    """x with `value` where `mask` is True (mask broadcasts to x); filled positions get no gradient."""
    return E.MaskedFill.apply(x, mask=_bool_mask("masked_fill", x, mask), value=value)


def compare(a, b, how: str) -> Tensor:
    """Elementwise comparison (not differentiated): a boolean Tensor."""
    a, b = _pair(a, b)
    xp = a.backend.xp
    try:
        return Tensor.wrap(getattr(xp, how)(a.data, b.data), a.device)
    except ValueError:
        raise _broadcast_error(how, a, b) from None


def logical_not(a: Tensor) -> Tensor:
    return Tensor.wrap(~a.data, a.device)


# ---------------------------------------------------------------- reductions

def sum(x, axis=None, keepdims=False, dim=None):
    return R.Sum.apply(x, axis=_axes("sum", axis, dim, x.ndim), keepdims=keepdims)


def mean(x, axis=None, keepdims=False, dim=None):
    axes = _axes("mean", axis, dim, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if count == 0:
        raise ShapeError(f"mean: reducing axes {axes} of shape {x.shape} would average over no elements")
    return R.Sum.apply(x, axis=axes, keepdims=keepdims) * (1.0 / count)


def max(x, axis=None, keepdims=False, dim=None):
    """Max over axes. Ties: the gradient is shared evenly among the maximal elements."""
    axes = _axes("max", axis, dim, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"max: cannot take the max over an empty axis of shape {x.shape}")
    return R.Max.apply(x, axis=axes, keepdims=keepdims)


def min(x, axis=None, keepdims=False, dim=None):
    """Min over axes (the max of -x); ties share the gradient evenly."""
    return -max(-x, axis, keepdims, dim)


def var(x, axis=None, keepdims=False, ddof=0, dim=None):
    """Variance over axes with `ddof` (0: population, 1: sample)."""
    axes = _axes("var", axis, dim, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if count - ddof <= 0:
        raise ShapeError(f"var: {count} elements over axes {axes} with ddof={ddof} leave no degrees of freedom")
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) * (1.0 / (count - ddof))


def logsumexp(x, axis=None, keepdims=False, dim=None):
    """log(sum(exp(x))) over axes, stable for large |x|."""
    return R.LogSumExp.apply(x, axis=_axes("logsumexp", axis, dim, x.ndim), keepdims=keepdims)


def argmax(x, axis=None, keepdims=False, dim=None):
    xp = x.backend.xp
    ax = dim if dim is not None else axis
    return Tensor.wrap(xp.argmax(x.data, axis=ax, keepdims=keepdims), x.device)


# ---------------------------------------------------------------- linear algebra

def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands are promoted, batch dims broadcast."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        which = "b.shape[-2]" if b.ndim > 1 else "b.shape[0]"
        raise ShapeError(f"matmul: cannot multiply shapes {a.shape} and {b.shape}: a.shape[-1]={k_a} but {which}={k_b}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"matmul: batch dims of {a.shape} and {b.shape} cannot be broadcast together") from None
    if a.ndim == 1 and b.ndim == 1:
        return (a * b).sum()
    if a.ndim == 1:
        return L.MatMul.apply(a.reshape(1, k_a), b).squeeze(-2)
    if b.ndim == 1:
        return L.MatMul.apply(a, b.reshape(k_b, 1)).squeeze(-1)
    return L.MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the weight {weight.shape} expects {weight.shape[-1]}")
    if weight.ndim != 2 or x.ndim == 0 or (bias is not None and bias.shape != weight.shape[:1]):
        raise ShapeError(f"linear: expected weight (out, in), bias (out,) and input (..., in), got weight "
                         f"{weight.shape}, bias {None if bias is None else bias.shape}, input {x.shape}")
    if bias is None:
        return L.Linear.apply(x, weight)
    return L.Linear.apply(x, weight, bias)


# ---------------------------------------------------------------- shapes

def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    shape = _shape_arg(shape)
    known = [n for n in shape if n != -1]
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: only one dimension can be -1, got {shape}")
    size = int(np.prod(known)) if known else 1
    if -1 in shape:
        if size == 0 or x.size % size:
            raise ShapeError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}")
        shape = tuple(x.size // size if n == -1 else n for n in shape)
    elif size != x.size:
        raise ShapeError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape} ({size} elements)")
    if shape == x.shape:
        return x
    return S.Reshape.apply(x, shape=shape)


def flatten(x, start_axis=0, end_axis=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_axis % x.ndim, end_axis % x.ndim
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def permute(x, *axes):
    axes = _shape_arg(axes)
    if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ShapeError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    axes = tuple(a % x.ndim for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return S.Permute.apply(x, axes=axes)


def transpose(x, *axes):
    """Reverse the axes (no arguments), swap two axes (PyTorch style), or permute (NumPy style)."""
    axes = _shape_arg(axes)
    if not axes:
        return permute(x, *reversed(range(x.ndim)))
    if len(axes) == 2 and x.ndim != 2:
        return swapaxes(x, *axes)
    return permute(x, *axes)


def swapaxes(x, axis1, axis2):
    order = list(range(x.ndim))
    a1, a2 = _axis("swapaxes", axis1, None, x.ndim), _axis("swapaxes", axis2, None, x.ndim)
    order[a1], order[a2] = order[a2], order[a1]
    return permute(x, *order)


def expand(x, *shape):
    """Broadcast to `shape` (-1 keeps a dim); a view, its gradient summed back."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: cannot expand shape {x.shape} to fewer dims {shape}")
    shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
    for i, n in enumerate(x.shape):
        if n != 1 and n != shape[lead + i]:
            raise ShapeError(f"expand: cannot broadcast shape {x.shape} to {shape}: dim {i} has size {n}")
    if shape == x.shape:
        return x
    return S.Expand.apply(x, shape=shape)


broadcast_to = expand


def squeeze(x, axis=None, dim=None):
    if dim is not None:
        axis = dim
    if axis is None:
        return x.reshape(tuple(n for n in x.shape if n != 1))
    axes = _axes("squeeze", axis, None, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, axis):
    if not -(x.ndim + 1) <= axis <= x.ndim:
        raise ShapeError(f"unsqueeze: axis {axis} is out of range for a tensor with {x.ndim} dims")
    axis = axis % (x.ndim + 1)
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


def cat(tensors: Sequence[Tensor], axis=0, dim=None):
    """Join tensors along an existing axis; all other dims must agree."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    first = tensors[0]
    ax = _axis("cat", axis, dim, first.ndim)
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(t.shape[i] != first.shape[i] for i in range(first.ndim) if i != ax):
            shapes = ", ".join(str(tuple(u.shape)) for u in tensors)
            raise ShapeError(f"cat: shapes {shapes} differ outside axis {ax}")
    if len(tensors) == 1:
        return first
    return S.Concatenate.apply(*tensors, axis=ax)


concatenate = cat


def stack(tensors: Sequence[Tensor], axis=0, dim=None):
    """Join tensors of equal shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    ax = dim if dim is not None else axis
    return cat([unsqueeze(t, ax) for t in tensors], axis=ax % (tensors[0].ndim + 1))


def split(x, split_size_or_sections, axis=0, dim=None):
    """Split along an axis into pieces of a given size (int) or of the given sizes (list)."""
    ax = _axis("split", axis, dim, x.ndim)
    n = x.shape[ax]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} add up to {builtins.sum(sizes)}, but axis {ax} of shape {x.shape} has {n}")
    lead = (slice(None),) * ax
    out, start = [], 0
    for size in sizes:
        out.append(getitem(x, lead + (slice(start, start + size),)))
        start += size
    return tuple(out)


def chunk(x, chunks, axis=0, dim=None):
    ax = _axis("chunk", axis, dim, x.ndim)
    return split(x, -(-x.shape[ax] // chunks), ax)


def _normalize_index(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        elif isinstance(i, list):
            i = x.backend.asarray(i)
            if i.size == 0:
                i = i.astype(np.int64)  # [] means "no rows" (as in NumPy), not a float index
        out.append(i)
    return tuple(out)


def getitem(x, index):
    """x[index] with slices, ints, None, Ellipsis and integer/boolean arrays; repeats accumulate gradient."""
    index = _normalize_index(x, index)
    try:
        return S.GetItem.apply(x, index=index)
    except IndexError as e:
        raise IndexError(f"getitem: index {index!r} does not fit a tensor of shape {x.shape}: {e}") from None


def gather(x, axis, index):
    """out[i][j] = x[i][index[i][j]] along `axis` (like torch.gather / np.take_along_axis)."""
    ax = _axis("gather", axis, None, x.ndim)
    idx = _array_on(x, index)
    if idx.ndim != x.ndim:
        raise ShapeError(f"gather: index has {idx.ndim} dims, x has {x.ndim} (shapes {idx.shape} and {x.shape})")
    xp = x.backend.xp
    grids = [xp.arange(n).reshape([-1 if d == i else 1 for d in range(idx.ndim)]) for i, n in enumerate(idx.shape)]
    grids[ax] = idx
    return getitem(x, tuple(grids))


def _check_ids(op, ids, n):
    if ids.dtype.kind not in "iu":
        raise DTypeError(f"{op}: indices must be integers, got dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise IndexError(f"{op}: indices must lie in [0, {n}), got values in [{int(ids.min())}, {int(ids.max())}]")


def embedding(ids, weight, padding_idx=None):
    """Rows of `weight` (V, D) for integer `ids` (...); `padding_idx` rows receive no gradient."""
    ids = _array_on(weight, ids)
    _check_ids("embedding", ids, weight.shape[0])
    return N.Embedding.apply(weight, ids=ids, padding_idx=padding_idx)


# ---------------------------------------------------------------- softmax family

def softmax(x, axis=-1, mask=None, dim=None):
    """Stable softmax. With a boolean `mask` (True = keep), masked entries are 0 and
    a fully masked row is all zeros (zero gradient), never NaN."""
    _require_float("softmax", x)
    ax = _axis("softmax", axis, dim, x.ndim)
    m = _bool_mask("softmax", x, mask) if mask is not None else None
    return N.Softmax.apply(x, axis=ax, mask=m)


def log_softmax(x, axis=-1, dim=None):
    _require_float("log_softmax", x)
    return N.LogSoftmax.apply(x, axis=_axis("log_softmax", axis, dim, x.ndim))


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross entropy of integer targets from logits (..., C), fused with log_softmax.

    Positions whose target equals `ignore_index` are skipped; "mean" divides by the
    number of counted positions. `label_smoothing` eps mixes eps/C into the target.
    """
    _require_float("cross_entropy", logits)
    tgt = targets if isinstance(targets, Tensor) else Tensor(_array_on(logits, targets), device=logits.device)
    if tgt.dtype.kind not in "iu":
        raise DTypeError(f"cross_entropy: targets must be integer class ids, got dtype {tgt.dtype}")
    if tgt.shape != logits.shape[:-1]:
        raise ShapeError(f"cross_entropy: logits {logits.shape} need targets of shape {logits.shape[:-1]}, got {tgt.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}")
    counted = tgt.data[tgt.data != ignore_index]
    _check_ids("cross_entropy", counted, logits.shape[-1])
    return N.CrossEntropy.apply(logits, tgt, ignore_index=ignore_index,
                                label_smoothing=float(label_smoothing), reduction=reduction)


def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability p and scale the rest by 1/(1-p) (seeded by manual_seed)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return x * Tensor.wrap(dropout_keep(x, x.shape, p), x.device)


def layer_norm(x, weight=None, bias=None, eps=1e-5):
    """Normalize over the last axis, then scale and shift (weight 1 and bias 0 when not given)."""
    _require_float("layer_norm", x)
    d = x.shape[-1:]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != d:
            raise ShapeError(f"layer_norm: {name} has shape {p.shape}, expected {d} for input {x.shape}")
    xp = x.backend.xp
    weight = weight if weight is not None else Tensor.wrap(xp.ones(d, dtype=x.dtype), x.device)
    bias = bias if bias is not None else Tensor.wrap(xp.zeros(d, dtype=x.dtype), x.device)
    return N.LayerNorm.apply(x, weight, bias, eps=eps)


# ---------------------------------------------------------------- attention

def causal_mask(t_q: int, t_k: int, backend_device="cpu"):
    """Boolean (t_q, t_k) mask, True = may attend. Aligned bottom-right: query i sits at
    absolute position t_k - t_q + i, which is what decoding with a KV cache needs."""
    xp = get_backend(backend_device).xp
    return xp.tril(xp.ones((t_q, t_k), dtype=bool), k=t_k - t_q)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, scale=None,
                                 training=True, return_weights=False, return_scores=False):
    """softmax(q k^T * scale, masked) v over the last two axes.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv), any strided views (the heads of a
    split projection are read in place). `attn_mask` is boolean (True = may attend)
    broadcasting to (..., Tq, Tk), or a float mask added to the scores; `is_causal` ANDs
    in the causal mask (aligned bottom-right, for KV caches). Rows with nothing to
    attend to give zeros and zero gradients. Dropout `dropout_p` acts on the weights.

    Returns the output; with `return_weights` / `return_scores` a tuple (output, weights,
    scores) of those asked for. Then the same maths runs step by step (matmul, softmax,
    dropout, matmul), every step a Tensor of the graph that can be kept and hooked;
    otherwise it runs as one op (ops/attention.py) whose scores never leave the kernel.
    Both are differentiable any number of times and agree to rounding.
    """
    op = "scaled_dot_product_attention"
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{op}: q {q.shape}, k {k.shape}, v {v.shape} need q[-1] == k[-1] and k[-2] == v[-2]")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    allowed, added = _attention_masks(op, q, attn_mask, is_causal, t_q, t_k)
    try:
        scores_shape = np.broadcast_shapes(q.shape[:-1], k.shape[:-2] + (1,), v.shape[:-2] + (1,)) + (t_k,)
    except ValueError:
        raise ShapeError(f"{op}: the batch axes of q {q.shape}, k {k.shape} and v {v.shape} do not broadcast") from None
    for m in (allowed, added):
        if m is not None:
            require_broadcast(op, "mask", m.shape, "the scores' shape", scores_shape)
    if not (return_weights or return_scores):
        keep = dropout_keep(q, np.broadcast_shapes(scores_shape, *(m.shape for m in (allowed, added) if m is not None)),
                            dropout_p, training)
        return A.Attention.apply(q, k, v, mask=_additive_mask(q, allowed, added), scale=scale, keep=keep)
    scores = matmul(q, k.swapaxes(-1, -2)) * scale
    if added is not None:  # -inf entries leave the softmax through its mask, so empty rows give 0
        finite = q.backend.xp.isfinite(added)
        allowed = finite if allowed is None else allowed & finite
        scores = scores + _like(q.backend.xp.where(finite, added, 0).astype(q.dtype), q)
    weights = softmax(scores, -1, mask=allowed)
    out = matmul(dropout(weights, dropout_p, training), v)
    return (out,) + ((weights,) if return_weights else ()) + ((scores,) if return_scores else ())


def _attention_masks(op, q, attn_mask, is_causal, t_q, t_k):
    """(boolean mask or None, float mask or None) from attn_mask and is_causal."""
    allowed, added = None, None
    if attn_mask is not None:
        m = _array_on(q, attn_mask)
        if m.dtype == np.bool_:
            allowed = m
        elif m.dtype.kind == "f":
            added = m
        else:
            raise DTypeError(f"{op}: attn_mask of dtype {m.dtype} (shape {m.shape}) is neither boolean (True = may "
                             "attend) nor floating point (added to the scores); convert a 0/1 mask with .astype(bool)")
    if is_causal:
        c = causal_mask(t_q, t_k, q.device)
        allowed = c if allowed is None else allowed & c
    return allowed, added


def _additive_mask(like: Tensor, allowed, added):
    """One float mask to add to the scores, in the masks' own (small) broadcast shape:
    `added` where `allowed`, -inf elsewhere; None when there is nothing to add."""
    xp, dtype = like.backend.xp, like.dtype
    if allowed is not None and bool(allowed.all()):
        allowed = None  # e.g. a padding mask of a batch without padding: nothing to add
    if allowed is None:
        return None if added is None else added.astype(dtype, copy=False)
    kept = xp.asarray(0, dtype=dtype) if added is None else added.astype(dtype, copy=False)
    return xp.where(allowed, kept, xp.asarray(-xp.inf, dtype=dtype))


def dropout_keep(like: Tensor, shape, p: float, training: bool = True):
    """Dropout's multipliers as an array: 0 with probability p, else 1/(1-p) (None when
    dropout is off). The same draws `dropout` makes for a tensor of this shape."""
    if not training or p == 0.0:
        return None
    keep = like.backend.random_uniform(tuple(shape), np.float32) >= p
    return (keep * (1.0 / (1.0 - p))).astype(like.dtype)


# ---------------------------------------------------------------- devices and dtypes

def to_device(x, device):
    return C.ToDevice.apply(x, device=device)


def cast(x, dtype):
    dtype = np.dtype(dtype) if not str(dtype) == "bfloat16" else dtype
    if x.dtype == dtype:
        return x
    return C.Cast.apply(x, dtype=dtype)

