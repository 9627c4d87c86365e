"""Shape functions that rearrange or copy values, composed from reshape/expand/indexing/cat
(so their gradients come for free): tril, triu, flip, pad, roll, repeat, repeat_interleave,
unflatten, diag, diagonal."""
from __future__ import annotations

import builtins

import numpy as np

from ..errors import ShapeError
from ..ops import shape as S
from ..tensor import Tensor
from ._common import _axes, _axis
from .elementwise import masked_fill
from .shape import _shape_arg, cat, getitem, reshape


def _triangle(op, x, diagonal, lower):
    if x.ndim < 2:
        raise ShapeError(f"{op}: needs a tensor of at least 2 dims, got shape {x.shape}")
    xp = x.backend.xp
    rows, cols = x.shape[-2:]
    keep = xp.tril(xp.ones((rows, cols), dtype=bool), diagonal) if lower else xp.triu(xp.ones((rows, cols), dtype=bool), diagonal)
    return masked_fill(x, ~keep, 0)


def tril(x, diagonal=0):
    """The lower triangle of the last two axes (entries above `diagonal` set to 0)."""
    return _triangle("tril", x, diagonal, True)


def triu(x, diagonal=0):
    """The upper triangle of the last two axes (entries below `diagonal` set to 0)."""
    return _triangle("triu", x, diagonal, False)


def flip(x, axis=None, dim=None):
    """Reverse the order along `axis` (all axes when None)."""
    axes = _axes("flip", axis, dim, x.ndim)
    return getitem(x, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim)))


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(x, pad, mode="constant", value=None):
    """Pad (or, with negative widths, crop) the last axes, PyTorch's order: (left, right) of the
    last axis, then of the one before, ...

    mode "constant" fills with `value` (default 0); "reflect" mirrors without repeating the edge
    (each width < the axis's size), "replicate" repeats the edge, "circular" wraps around (each
    width <= the size). Negative widths crop first, and the other modes then read the cropped
    tensor, as in PyTorch. The padded values are gathered, so their gradient sums back."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: needs an even number of widths, at most 2 per axis of shape {x.shape}, got {pad}")
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(PAD_MODES)}; got {mode!r}")
    if value is not None and mode != "constant":
        raise ValueError(f"pad: mode {mode!r} takes no value (got value={value}); only 'constant' fills with one")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    for ax, ((lo, hi), n) in enumerate(zip(widths, x.shape)):
        if n + builtins.min(lo, 0) + builtins.min(hi, 0) < 0:
            raise ShapeError(f"pad: widths {(lo, hi)} crop more than axis {ax} of shape {x.shape} holds ({n})")
    crop = tuple(slice(-builtins.min(lo, 0), n + builtins.min(hi, 0)) for (lo, hi), n in zip(widths, x.shape))
    if any(lo < 0 or hi < 0 for lo, hi in widths):
        x = getitem(x, crop)
    widths = [(builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in widths]
    if mode == "constant":
        return _pad_constant(x, widths, 0.0 if value is None else value)
    for ax, (lo, hi) in enumerate(widths):
        if lo or hi:
            x = getitem(x, (slice(None),) * ax + (_pad_source(x, mode, ax, lo, hi),))
    return x


def _pad_source(x, mode, ax, lo, hi):
    """For each position of the padded axis, the position of x it copies (an index array)."""
    n = x.shape[ax]
    if mode == "reflect" and builtins.max(lo, hi) >= n:
        raise ShapeError(f"pad: reflect widths {(lo, hi)} must be smaller than axis {ax}'s size {n} (shape {x.shape})")
    if mode == "circular" and builtins.max(lo, hi) > n:
        raise ShapeError(f"pad: circular widths {(lo, hi)} would wrap around axis {ax} (size {n}, shape {x.shape}) "
                         "more than once")
    if mode == "replicate" and n == 0:
        raise ShapeError(f"pad: replicate has no edge to repeat on the empty axis {ax} of shape {x.shape}")
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        source = np.abs(i)
        source = np.where(source > n - 1, 2 * (n - 1) - source, source)
    elif mode == "replicate":
        source = np.clip(i, 0, n - 1)
    else:
        source = i % n
    return x.backend.asarray(source)


def _pad_constant(x, widths, value):
    shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths))
    inside = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, widths))
    out = S.ScatterAdd.apply(x, index=inside, shape=shape)  # x written into zeros: the adjoint of slicing
    if value != 0:
        xp = x.backend.xp
        border = xp.full(shape, value, dtype=x.dtype)
        border[inside] = 0
        out = out + Tensor.wrap(border, x.device)
    return out


def roll(x, shifts, axis=None, dim=None):
    """Shift elements along axes, wrapping around (the flattened tensor when axis is None)."""
    if dim is not None:
        axis = dim
    if axis is None:
        return roll(x.reshape(-1), shifts, 0).reshape(x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: {len(shifts)} shifts for {len(axes)} axes")
    for shift, ax in zip(shifts, axes):
        ax = _axis("roll", ax, None, x.ndim)
        n = x.shape[ax]
        k = shift % n if n else 0
        if k:
            lead = (slice(None),) * ax
            x = cat([getitem(x, lead + (slice(n - k, None),)), getitem(x, lead + (slice(0, n - k),))], axis=ax)
    return x


def repeat(x, *repeats):
    """Tile the tensor (torch.Tensor.repeat / np.tile): repeats per axis, extra leading axes allowed."""
    repeats = _shape_arg(repeats)
    if len(repeats) < x.ndim:
        raise ShapeError(f"repeat: {len(repeats)} repeat counts for a tensor with {x.ndim} dims")
    shape = (1,) * (len(repeats) - x.ndim) + tuple(x.shape)
    interleaved = [v for n in shape for v in (1, n)]
    expanded = [v for r, n in zip(repeats, shape) for v in (r, n)]
    return x.reshape(interleaved).expand(expanded).reshape(tuple(r * n for r, n in zip(repeats, shape)))


def repeat_interleave(x, repeats: int, axis=None, dim=None):
    """Each element `repeats` times in a row along `axis` (the flattened tensor when None)."""
    if dim is not None:
        axis = dim
    if not isinstance(repeats, (int, np.integer)) or repeats < 0:
        raise ValueError(f"repeat_interleave: repeats must be an int >= 0, got {repeats!r}")
    if axis is None:
        return repeat_interleave(x.reshape(-1), repeats, 0)
    ax = _axis("repeat_interleave", axis, None, x.ndim)
    wide = x.unsqueeze(ax + 1).expand(x.shape[:ax + 1] + (int(repeats),) + x.shape[ax + 1:])
    return wide.reshape(x.shape[:ax] + (x.shape[ax] * int(repeats),) + x.shape[ax + 1:])


def unflatten(x, axis, sizes):
    """Split one axis into `sizes` (one of them may be -1)."""
    ax = _axis("unflatten", axis, None, x.ndim)
    return reshape(x, x.shape[:ax] + tuple(sizes) + x.shape[ax + 1:])


def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal of the (axis1, axis2) planes, as a last axis (as torch.diagonal)."""
    return _diagonal(x, offset, axis1, axis2)


def _diagonal(x, offset, axis1, axis2):
    a1, a2 = _axis("diagonal", axis1, None, x.ndim), _axis("diagonal", axis2, None, x.ndim)
    if a1 == a2:
        raise ShapeError(f"diagonal: axis1 and axis2 are both {a1}")
    rest = [i for i in range(x.ndim) if i not in (a1, a2)]
    moved = x.permute(*rest, a1, a2)
    rows, cols = moved.shape[-2:]
    n = builtins.max(0, builtins.min(rows, cols - offset) if offset >= 0 else builtins.min(rows + offset, cols))
    xp = x.backend.xp
    i = xp.arange(n) + builtins.max(-offset, 0)
    return getitem(moved, (Ellipsis, i, i + offset))


def diag(x, diagonal=0):
    """A 1-D tensor -> the square matrix with it on a diagonal; a 2-D one -> its diagonal."""
    if x.ndim == 2:
        return _diagonal(x, diagonal, 0, 1)
    if x.ndim != 1:
        raise ShapeError(f"diag: needs a 1-D or 2-D tensor, got shape {x.shape}")
    n = x.shape[0] + builtins.abs(diagonal)
    xp = x.backend.xp
    i = xp.arange(x.shape[0])
    rows, cols = (i, i + diagonal) if diagonal >= 0 else (i - diagonal, i)
    return S.ScatterAdd.apply(x, index=(rows, cols), shape=(n, n))
