"""Attention's core, softmax(scale * q k^T, masked) v, as one op with a hand-written backward.

The composite form (matmul, softmax, matmul in `F.scaled_dot_product_attention` and in
`nn.MultiHeadAttention` when someone looks inside) is the one to study: every
intermediate is a Tensor that can be kept, hooked and differentiated. This op computes
the same function with the (B, H, Tq, Tk) scores as one array that it updates in place,
and only the probabilities P saved for backward:

    forward   S = scale q k^T (+ mask: -inf where not allowed);  P = softmax(S);  O = P v
    backward  dV = P^T dO;  dP = dO v^T;  dS = P * (dP - rowsum(dP * P));
              dQ = scale dS k;  dK = scale dS^T q

With dropout on the weights, O = (P * keep) v, where keep is 0 or 1/(1-p) per entry;
dP above is then (dO v^T) * keep. A query with nothing to attend to gets P = 0, so O = 0
and zero gradients, as in the composite form.

Once-differentiable (backward works on arrays); the composite form gives higher orders.
"""
from ..autograd import Function
from .elementwise import const
from .rows import row_dot, row_sum


def _probabilities(xp, q, k, mask, scale):
    """P = softmax(scale q k^T + mask) over the last axis, in one (..., Tq, Tk) array."""
    s = xp.matmul(q, k.swapaxes(-1, -2))
    s *= scale
    if mask is not None:
        if mask.ndim > s.ndim or any(m > n for m, n in zip(mask.shape[::-1], s.shape[::-1])):
            s = s + mask  # the mask has batch axes the scores lack: they broadcast up
        else:
            s += mask
    m = s.max(axis=-1, keepdims=True)
    if mask is not None:
        m[~xp.isfinite(m)] = 0  # rows with nothing to attend to: exp(-inf - 0) = 0 everywhere
    s -= m
    xp.exp(s, out=s)
    total = row_sum(xp, s)
    if mask is not None:
        total[total == 0] = 1  # ... and 0 / 1 = 0 instead of NaN
    s /= total
    return s


def _attend(xp, q, k, v, mask, scale, keep, out=None):
    """O = (P * keep) v, written into `out` when given; returns (O, P)."""
    p = _probabilities(xp, q, k, mask, scale)
    weights = p if keep is None else p * keep
    return xp.matmul(weights, v, out=out), p


def _attend_backward(xp, q, k, v, p, keep, g, scale, dq=None, dk=None, dv=None):
    """dQ, dK, dV of O = (P * keep) v for the output gradient g, into the given arrays if any."""
    weights = p if keep is None else p * keep
    dv = xp.matmul(weights.swapaxes(-1, -2), g, out=dv)
    del weights
    ds = xp.matmul(g, v.swapaxes(-1, -2))  # dP, then dS in place
    if keep is not None:
        ds *= keep
    ds -= row_dot(xp, ds, p)
    ds *= p
    ds *= scale
    dq = xp.matmul(ds, k, out=dq)
    dk = xp.matmul(ds.swapaxes(-1, -2), q, out=dk)
    return dq, dk, dv


def additive_mask(xp, allowed, added, dtype):
    """One float mask to add to the scores, in the masks' own (small) broadcast shape:
    `added` (a float mask, or None) where `allowed` (boolean, True = may attend, or None)
    and -inf elsewhere. None when there is no mask at all."""
    if allowed is not None and bool(allowed.all()):
        allowed = None  # e.g. a padding mask of a batch without padding: nothing to add
    if allowed is None:
        return None if added is None else added.astype(dtype, copy=False)
    kept = xp.asarray(0, dtype=dtype) if added is None else added.astype(dtype, copy=False)
    return xp.where(allowed, kept, xp.asarray(-xp.inf, dtype=dtype))


class Attention(Function):
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv).

    `mask`: a float array broadcasting to (..., Tq, Tk) added to the scaled scores (0 where
    allowed, -inf where not: see `additive_mask`), or None.
    `keep`: the dropout multipliers (0 or 1/(1-p)) of shape (..., Tq, Tk), or None.
    """

    once_differentiable = True

    def forward(self, q, k, v, mask, scale, keep):
        self.scale, self.keep = scale, keep
        out, self.saved = _attend(self.xp, q, k, v, mask, scale, keep)
        return out

    def backward(self, g):
        q, k, v = (t.data for t in self.inputs)
        grads = _attend_backward(self.xp, q, k, v, self.saved, self.keep, g.data, self.scale)
        return tuple(const(g, a) if t.requires_grad else None for a, t in zip(grads, self.inputs))


class PackedSelfAttention(Function):
    """The heads of a fused QKV projection: qkv (B, T, 3 * d) -> merged heads (B, T, d).

    The last axis of qkv is [q | k | v], each split into `n_heads` heads of d / n_heads;
    `mask` and `keep` are as for `Attention`, broadcasting to (B, H, T, T).
    Heads are read as strided views and the output and the gradient are written through
    strided views, so neither direction copies to split or merge heads, and the
    gradient of qkv is one array rather than three scattered into zeros and added.
    """

    once_differentiable = True

    def forward(self, qkv, n_heads, mask, scale, keep):
        xp = self.xp
        B, T, three_d = qkv.shape
        d = three_d // 3
        self.n_heads, self.scale, self.keep = n_heads, scale, keep
        q, k, v = _split_heads(qkv, n_heads)
        out = xp.empty((B, T, n_heads, d // n_heads), dtype=qkv.dtype)
        _, self.saved = _attend(xp, q, k, v, mask, scale, keep, out=out.transpose(0, 2, 1, 3))
        return out.reshape(B, T, d)

    def backward(self, g):
        xp = self.xp
        qkv = self.inputs[0].data
        B, T, three_d = qkv.shape
        H = self.n_heads
        d_qkv = xp.empty_like(qkv)
        dq, dk, dv = _split_heads(d_qkv, H)
        g_heads = g.data.reshape(B, T, H, three_d // 3 // H).transpose(0, 2, 1, 3)
        _attend_backward(xp, *_split_heads(qkv, H), self.saved, self.keep, g_heads, self.scale, dq, dk, dv)
        return (const(g, d_qkv),)


def _split_heads(qkv, n_heads):
    """Views q, k, v (B, H, T, dh) of a (B, T, 3 * H * dh) array."""
    B, T, three_d = qkv.shape
    heads = qkv.reshape(B, T, 3, n_heads, three_d // 3 // n_heads)
    return tuple(heads[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
