"""The named kernels of the backend contract, written once against the array namespace `xp`.

These are the CPU implementation (the NumPy backend uses them as they are) and what
the CuPy backend runs wherever it has no CUDA kernel of its own. They work in place
wherever they can: the arrays here are the largest of a training step (attention's
(B, H, T, T) scores, the MLP's 4d-wide activations), and every full-size temporary
saved is a pass through memory saved. Each kernel's docstring gives its formula; the
op that calls it (ops/) has the same derivative written with Tensor ops, and the
tests hold the two against each other.
"""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import is_half
from ..shapes import broadcast_shape

GELU_K0 = math.sqrt(2.0 / math.pi)
GELU_K1 = 0.044715
# |scores| this small need no shift before exp: exp(+-60) is a normal float32 (10^-27 to 10^26),
# and a row of 10^12 such terms still sums below float32's 3.4e38
SHIFT_FREE_BOUND = 60.0


def sorted_runs(xp, ids):
    """(order, sorted ids, heads) of flat integer ids: a stable sort, so the rows of one id keep
    their first-to-last order, and heads[i] says sorted position i starts a run of equal ids.

    Summing each run first to last is an order-fixed scatter-add: the same sums in the same
    order as np.add.at into zeros, whatever the order the ids came in, and the same bits on
    every run (no atomics racing). No size here depends on the values, so on a GPU nothing
    waits for the device. The CUDA kernel `segment_sum_rows` (cupy_kernels.py) sums the runs."""
    order = xp.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    heads = xp.ones(ids.shape, dtype=xp.bool_)
    heads[1:] = sorted_ids[1:] != sorted_ids[:-1]
    return order, sorted_ids, heads


def picked_rows(xp, target, index, mode="raise"):
    """(target's rows, row ids) when `index` picks rows of a contiguous target with integer
    arrays (x[ids], or x[rows, cols]: rows of the flattened leading axes, negative ids
    wrapped), else None. `mode` is ravel_multi_index's for ids out of range ("wrap" on a
    GPU, where "raise" would read the ids on the host)."""
    index = index[0] if isinstance(index, tuple) and len(index) == 1 else index
    arrays = index if isinstance(index, tuple) else (index,)
    if not (target.flags.c_contiguous and all(isinstance(i, xp.ndarray) and i.dtype.kind in "iu" for i in arrays)):
        return None
    lead = target.shape[:len(arrays)]
    picked = [xp.where(i < 0, i + n, i) for i, n in zip(xp.broadcast_arrays(*arrays), lead)]
    flat_ids = picked[0] if len(arrays) == 1 else xp.ravel_multi_index(tuple(picked), lead, mode=mode)
    return target.reshape((-1,) + target.shape[len(arrays):]), flat_ids


class ArrayKernels:
    """Mixin: the kernels of `Backend` on `self.xp`, using the backend's row/column sums."""

    def matmul(self, a, b):
        return self.xp.matmul(a, b)

    # ---- softmax family ---------------------------------------------------
    def softmax(self, x, axis, mask):
        """exp(x - max) / sum, masked entries 0; a row with nothing kept is all 0 (not NaN)."""
        xp = self.xp
        if x.ndim == 0:  # one entry is its own distribution (and CuPy has no axis 0 on 0-d arrays)
            one = xp.ones_like(x)
            return one if mask is None else xp.where(mask, one, xp.zeros_like(x))
        if mask is None:
            return self._normalize(x.copy(), axis, masked=False)
        return self._normalize(xp.where(mask, x, xp.asarray(-xp.inf, dtype=x.dtype)), axis, masked=True)

    def _normalize(self, e, axis, masked):
        """softmax of `e` along `axis`, in place (one full-size array for the biggest arrays of
        a step, attention's scores). `masked`: -inf entries may fill a row, which then gives 0."""
        xp = self.xp
        m = self._max(e, axis)
        if masked:  # `where` and `+=`, not m[mask] = 0: a boolean index is a GPU synchronisation
            m = xp.where(m == -xp.inf, xp.asarray(0, dtype=m.dtype), m)  # a row of -inf: exp(-inf - 0) = 0 ...
        e -= m
        xp.exp(e, out=e)
        total = self._sum(e, axis)
        if masked:
            total += total == 0  # ... and 0 / 1 = 0 instead of NaN
        e /= total
        return e

    def _max(self, x, axis):
        """Max along `axis`, kept: the shift that keeps exp from overflowing."""
        return self.row_max(x) if axis in (-1, x.ndim - 1) else self.xp.max(x, axis=axis, keepdims=True)

    def _sum(self, x, axis):
        """Sum along `axis`, kept; float16 and bfloat16 accumulate in float32 (a row of
        70,000 exp values would overflow float16's 65504)."""
        if is_half(x.dtype):
            return self.xp.sum(x, axis=axis, keepdims=True, dtype=np.float32)
        return self.row_sum(x) if axis in (-1, x.ndim - 1) else self.xp.sum(x, axis=axis, keepdims=True)

    def softmax_backward(self, y, g, axis):
        """dx = y * (g - sum(g * y))."""
        xp = self.xp
        if y.ndim == 0:  # a one-entry distribution does not move
            return xp.zeros_like(g)
        if axis in (-1, y.ndim - 1):
            dot = self.row_dot(g, y)
        else:
            dot = xp.sum(g * y, axis=axis, keepdims=True)
        out = g - dot
        out *= y
        return out

    def log_softmax(self, x, axis):
        """x - max - log(sum(exp(x - max)))."""
        xp = self.xp
        if x.ndim == 0:  # log of a one-entry distribution
            return xp.zeros_like(x)
        shifted = x - self._max(x, axis)
        shifted -= xp.log(self._sum(xp.exp(shifted), axis))
        return shifted

    def log_softmax_backward(self, y, g, axis):
        """dx = g - exp(y) * sum(g)."""
        xp = self.xp
        if y.ndim == 0:
            return xp.zeros_like(g)
        out = xp.exp(y)
        out *= xp.sum(g, axis=axis, keepdims=True)
        return g - out

    # ---- cross entropy ----------------------------------------------------
    def cross_entropy(self, logits, targets, ignore_index, label_smoothing):
        """loss = log sum exp(x - m) - (x_t - m), mixed with the mean over classes for label
        smoothing; saved: the probabilities. Working on x - m keeps the loss exact near the
        max, where log-sum-exp itself would be rounded at the scale of |x|."""
        xp = self.xp
        valid = targets != ignore_index
        safe = xp.where(valid, targets, 0)
        shifted = logits - self.row_max(logits)
        e = xp.exp(shifted)
        s = self._sum(e, -1)
        log_s = xp.log(s)[..., 0]
        loss = log_s - xp.take_along_axis(shifted, safe[..., None], axis=-1)[..., 0]
        if label_smoothing:
            loss = (1 - label_smoothing) * loss + label_smoothing * (log_s - xp.mean(shifted, axis=-1))
        e /= s
        return xp.where(valid, loss, 0).astype(logits.dtype, copy=False), e

    def cross_entropy_backward(self, logits, targets, probs, grad_scale, ignore_index, label_smoothing):
        """dx = scale * (probs - ((1 - eps) onehot(target) + eps / C)), 0 on ignored positions."""
        xp = self.xp
        valid = targets != ignore_index
        scale = xp.where(valid, xp.asarray(grad_scale, dtype=probs.dtype), xp.asarray(0, dtype=probs.dtype))[..., None]
        dx = probs * scale
        if label_smoothing:
            dx -= scale * (label_smoothing / probs.shape[-1])
        at = xp.where(valid, targets, 0)[..., None]
        xp.put_along_axis(dx, at, xp.take_along_axis(dx, at, axis=-1) - scale * (1 - label_smoothing), axis=-1)
        return dx

    # ---- layer norm -------------------------------------------------------
    def layer_norm(self, x, weight, bias, eps):
        """xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps); y = xhat * weight + bias.
        saved: (xhat, rstd)."""
        xp = self.xp
        if is_half(x.dtype):  # the statistics of a float16 row overflow: compute in float32
            y, saved = self.layer_norm(*(a.astype(np.float32) for a in (x, weight, bias)), eps)
            return y.astype(x.dtype), saved
        y = xp.empty_like(x)
        return y, self._layer_norm_into(y, x, weight, bias, eps)

    def _layer_norm_into(self, y, x, weight, bias, eps):
        """layer_norm of float32/64 `x` written into `y` (a block of the whole output: no copy
        afterwards); returns what the backward needs."""
        xp = self.xp
        inv_d = 1.0 / x.shape[-1]
        xhat = x - self.row_sum(x) * inv_d
        var = self.row_dot(xhat, xhat)
        var *= inv_d
        var += eps
        rstd = 1.0 / xp.sqrt(var)
        xhat *= rstd  # in place: centered becomes xhat
        xp.multiply(xhat, weight, out=y)
        y += bias
        return xhat, rstd

    def layer_norm_backward(self, x, weight, g, saved, needs):
        """dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) with gw = g * weight;
        dweight = sum over rows of g xhat; dbias = sum over rows of g."""
        if is_half(g.dtype):
            grads = self.layer_norm_backward(x, weight.astype(np.float32), g.astype(np.float32), saved, needs)
            return tuple(None if d is None else d.astype(g.dtype) for d in grads)
        dx = self.xp.empty_like(g) if needs[0] else None
        return self._layer_norm_backward_into(dx, weight, g, saved, needs)

    def _layer_norm_backward_into(self, dx, weight, g, saved, needs):
        """layer_norm_backward of float32/64 `g`, dx written into `dx` (a block of the whole
        gradient: no copy afterwards)."""
        xhat, rstd = saved
        need_dx, need_dw, need_db = needs
        inv_d = 1.0 / g.shape[-1]
        if need_dx:
            self.xp.multiply(g, weight, out=dx)
            proj = self.row_dot(dx, xhat)
            proj *= inv_d
            proj = proj * xhat
            dx -= self.row_sum(dx) * inv_d
            dx -= proj
            dx *= rstd
        rows, xhat_rows = g.reshape(-1, g.shape[-1]), xhat.reshape(-1, g.shape[-1])
        dw = self.column_dot(rows, xhat_rows) if need_dw else None
        db = self.column_sum(rows) if need_db else None
        return dx, dw, db

    # ---- GELU (tanh approximation) ---------------------------------------
    def gelu_tanh(self, x):
        """y = x s with s = 0.5 (1 + tanh(u)), u = k0 (x + k1 x^3); saved: s."""
        s = self._gelu_sigmoid(x)
        return x * s, s

    def _gelu_sigmoid(self, x):
        if x.ndim == 0:  # 0-d arithmetic gives NumPy scalars, which cannot be updated in place
            return self._gelu_sigmoid(x.reshape(1)).reshape(())
        s = x * x
        s *= GELU_K0 * GELU_K1
        s += GELU_K0
        s *= x
        self.xp.tanh(s, out=s)
        s *= 0.5
        s += 0.5
        return s

    def gelu_tanh_backward(self, x, s, g):
        """dx = g (s + x s (1 - s) 2u'), 2u' = 2 k0 (1 + 3 k1 x^2): s = sigmoid(2u), so no
        second tanh is needed."""
        if x.ndim == 0:
            return self.gelu_tanh_backward(x.reshape(1), s.reshape(1), g.reshape(1)).reshape(())
        slope = x * x
        slope *= 6 * GELU_K0 * GELU_K1
        slope += 2 * GELU_K0
        slope *= x  # x 2u'
        d = self.xp.subtract(1, s, dtype=s.dtype)
        d *= s
        d *= slope
        d += s
        d *= g
        return d

    # ---- attention core ---------------------------------------------------
    def attention(self, q, k, v, mask, scale, keep):
        """S = scale q k^T + mask (-inf where not allowed); P = softmax(S) = e r with
        e = exp(S - shift) and r = 1 / rowsum(e); out = ((e * keep) v) r.

        The (..., Tq, Tk) scores are one array updated in place, and P is never formed:
        the 1/rowsum goes onto the (..., Tq, dv) output instead, and the scale onto q, so
        the (T, T) array sees the mask, the exp and the sum only (and the shift by the row
        max, in rows where `_shift_free_rows` cannot rule out overflow). Saved: (e, r). q, k and v may be strided
        views (heads of one projection): the products read them in place, and the output
        is laid out in memory like q, so that merging the heads back is a view."""
        return self._attention(q, k, v, mask, scale, keep, self._shift_free_rows(q, k, mask, scale))

    def _attention(self, q, k, v, mask, scale, keep, free_rows):
        e, r = self._exponentials(q, k, mask, scale, free_rows)
        out = self._matmul_like(e if keep is None else e * keep, v, q)
        out *= r
        return out, (e, r)

    def attention_backward(self, q, k, v, saved, keep, g, scale, scores_grad=False):
        """With P = e r (rows of e scaled by r) and gr = g r:
        dV = (P keep)^T dO = (e keep)^T gr;  dP r = (gr v^T) keep;
        dS = P (dP - rowsum(dP P)) = e (dP r - r rowsum(dP r e));
        dQ = scale dS k;  dK = scale dS^T q. Returns (dq, dk, dv, dS): dS is the gradient of
        the scores (and of a mask added to them), computed on the way in any case."""
        e, r = saved
        gr = g * r  # r goes onto the (..., Tq, dv) gradient, not the (..., Tq, Tk) e
        dv = self._matmul_like((e if keep is None else e * keep).swapaxes(-1, -2), gr, v)
        ds = self.xp.matmul(gr, v.swapaxes(-1, -2))  # dP r, then dS in place
        if keep is not None:
            ds *= keep
        ds -= self.row_dot(ds, e) * r
        ds *= e
        dq = self._matmul_like(ds, k, q)
        dq *= scale  # on the (..., Tq, d) product rather than the (..., Tq, Tk) dS, which stays unscaled
        dk = self._matmul_like(ds.swapaxes(-1, -2), q, k)
        dk *= scale
        return dq, dk, dv, ds

    def _exponentials(self, q, k, mask, scale, free_rows):
        """(e, r): e = exp(scale q k^T + mask - row max) and r = 1 / rowsum(e), so that e r is
        softmax(scale q k^T + mask); a row with nothing allowed gets e = 0 and r = 1.
        `free_rows` (..., Tq, 1), or None: query rows whose scores are proven small enough to
        need no shift (softmax does not change under one); the same e r for them."""
        xp = self.xp
        s = xp.matmul(q * xp.asarray(scale, dtype=q.dtype), k.swapaxes(-1, -2))
        if mask is not None:
            if mask.ndim > s.ndim or any(m > n for m, n in zip(mask.shape[::-1], s.shape[::-1])):
                s = s + mask  # the mask has batch axes the scores lack: they broadcast up
            else:
                s += mask
        masked = mask is not None
        if free_rows is None or not free_rows.all():
            m = self._max(s, -1)
            zero = xp.asarray(0, dtype=m.dtype)
            if masked:  # `where`, not m[mask] = 0: a boolean index is a GPU synchronisation
                m = xp.where(m == -xp.inf, zero, m)  # a row of -inf: exp(-inf - 0) = 0 ...
            s -= m if free_rows is None else xp.where(free_rows, zero, m)
        xp.exp(s, out=s)
        total = self._sum(s, -1)
        if masked:
            total += total == 0  # ... and r = 1 / 1 instead of 1 / 0
        return s, (1 / total).astype(s.dtype, copy=False)

    def _shift_free_rows(self, q, k, mask, scale):
        """The query rows of attention whose exp(scores) needs no shift by the row max, as
        a boolean (..., Tq, 1): each decided from its own inputs only (its q row, the keys,
        its mask row), so no row's bits depend on another's. None: shift every row.
        Proving a row small needs a host decision, a synchronisation on a GPU: here, never."""
        return None

    def _matmul_like(self, a, b, like):
        """a @ b, written into an array laid out like `like` when the product has its shape."""
        xp = self.xp
        shape = broadcast_shape(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
        out = xp.empty_like(like) if shape == like.shape and a.dtype == like.dtype else None
        return xp.matmul(a, b, out=out)
