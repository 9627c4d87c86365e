"""NumPy references for the op table (table.py): float64, written the plain way, independent
of the ops they check."""
from __future__ import annotations

import math

import numpy as np

erf = np.vectorize(math.erf, otypes=[np.float64])
FLOAT_MASK = np.triu(np.full((3, 3), -2.0), 1)


SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def relu(x):
    return np.where(x > 0, x, 0.0)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_exact(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def clip(x, min=None, max=None):
    return np.clip(x, -np.inf if min is None else min, np.inf if max is None else max)


def logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def pad(x, pad, mode="constant", value=None):
    """F.pad by NumPy: negative widths sliced off, then np.pad (edge = replicate, wrap = circular)."""
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    x = x[tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(widths, x.shape))]
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if mode == "constant":
        return np.pad(x, widths, constant_values=0.0 if value is None else value)
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])


def running_extreme_index(x, axis, better):
    """Where cummax (better=max) / cummin (min) took each running value: the latest position at
    ties, written as a loop over the axis."""
    x = np.moveaxis(np.asarray(x), axis, -1)
    out = np.zeros(x.shape, dtype=np.int64)
    for row in np.ndindex(x.shape[:-1]):
        best, at = x[row + (0,)], 0
        for i, value in enumerate(x[row]):
            if better(value, best) == value:  # value is at least as good: ties move to the latest
                best, at = value, i
            out[row + (i,)] = at
    return np.moveaxis(out, -1, axis)


def unfold(x, dimension, size, step):
    """Tensor.unfold as a stack of copied windows."""
    x = np.asarray(x).reshape(-1) if np.ndim(x) == 0 else np.asarray(x)
    n_windows = (x.shape[dimension] - size) // step + 1
    windows = [np.take(x, np.arange(w * step, w * step + size), axis=dimension) for w in range(n_windows)]
    return np.moveaxis(np.stack(windows, axis=dimension % x.ndim), dimension % x.ndim + 1, -1)


def sort(x, axis=-1, descending=False):
    return -np.sort(-x, axis) if descending else np.sort(x, axis)


def normalize(x, p=2.0, axis=1, eps=1e-12):
    return x / np.maximum((np.abs(x) ** p).sum(axis, keepdims=True) ** (1 / p), eps)


def scatter_add(x, src, ids=np.array([[0, 1, 2], [2, 0, 1]])):
    out = x.copy()
    for r in range(ids.shape[0]):
        for c in range(ids.shape[1]):
            out[ids[r, c], c] += src[r, c]
    return out


def scatter(x, src, ids=np.array([[0, 1, 2], [2, 0, 1]])):
    out = x.copy()
    for r in range(ids.shape[0]):
        for c in range(ids.shape[1]):
            out[r, ids[r, c]] = src[r, c]
    return out


def linear(x, w, b):
    return x @ w.T + b


def softmax(x, axis=-1, mask=None):
    x = np.asarray(x, dtype=np.float64)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return np.divide(e, s, out=np.zeros_like(e), where=s > 0)


def log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def cross_entropy(x, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    logp = log_softmax(x, -1)
    valid = targets != ignore_index
    picked = np.take_along_axis(logp, np.where(valid, targets, 0)[..., None], -1)[..., 0]
    loss = -((1 - label_smoothing) * picked + label_smoothing * logp.mean(-1))
    loss = np.where(valid, loss, 0.0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(valid.sum(), 1)


def cross_entropy_soft(x, p):
    target = softmax(p, -1)
    return -(target * log_softmax(x, -1)).sum(-1).mean()


def nll_loss(logp, targets, ignore_index=-100, reduction="mean"):
    valid = targets != ignore_index
    loss = np.where(valid, -np.take_along_axis(logp, np.where(valid, targets, 0)[..., None], -1)[..., 0], 0.0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(valid.sum(), 1)


def binary_cross_entropy(p, y):
    return -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100)).mean()


def smooth_l1(a, b, beta=1.0, reduction="mean"):
    d = np.abs(a - b)
    loss = np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return {"mean": np.mean, "sum": np.sum, "none": lambda x: x}[reduction](loss)


def div_rounded(a, b, rounding_mode=None):
    q = np.true_divide(a, b)
    return {None: q, "trunc": np.trunc(q), "floor": np.floor(q)}[rounding_mode]


def stable_argsort(x, axis=-1, descending=False):
    """Equal values keep their order, ascending or descending (as torch.sort(stable=True)): -x has the same ties."""
    return np.argsort(-x if descending else x, axis, kind="stable")


def topk_indices(x, k, axis=-1, largest=True, sorted=True):  # noqa: A002
    order = stable_argsort(x, axis, descending=largest)
    return np.take(order, np.arange(k), axis=axis)


def topk(x, k, axis=-1, largest=True, sorted=True):  # noqa: A002
    return np.take_along_axis(x, topk_indices(x, k, axis, largest, sorted), axis)


def layer_norm(x, w, b, eps=1e-3):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


def attention(q, k, v, mask=None, causal=False, float_mask=None, scale=None):
    return attention_with_weights(q, k, v, mask, causal, float_mask, scale)[0]


def attention_with_weights(q, k, v, mask=None, causal=False, float_mask=None, scale=None):
    """(softmax(scale q k^T + float_mask, masked) v, the weights); causal is aligned bottom-right."""
    tq, tk = q.shape[-2], k.shape[-2]
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if float_mask is not None:
        s = s + float_mask
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= mask
    if causal:
        i, j = np.arange(tq)[:, None], np.arange(tk)[None, :]
        allowed &= j <= i + (tk - tq)  # bottom-right aligned (KV-cache decoding)
    w = softmax(s, -1, allowed)
    return w @ v, w
