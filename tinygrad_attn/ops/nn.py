"""Fused neural-network ops: softmax, log_softmax, cross_entropy, layer_norm.

Each computes in one pass what the composite of primitives would do in several,
and keeps the max-subtraction that makes it finite for logits of +-1e4.
"""
from ..autograd import Function, is_grad_enabled
from .elementwise import const, fused_kernels
from .rows import column_dot, column_sum, row_dot, row_sum


class Softmax(Function):
    """softmax over `axis`; with a boolean `mask` (True = keep), masked entries get 0.

    A row with every entry masked gives all zeros (and zero gradient), not NaN.
    """

    def forward(self, a, axis, mask=None):
        xp = self.xp
        self.axis = axis
        if a.ndim == 0:  # one entry is its own distribution (and CuPy has no axis 0 on 0-d arrays)
            one = xp.ones_like(a)
            return one if mask is None else xp.where(mask, one, xp.zeros_like(a))
        fused = fused_kernels(self, a)
        if fused is not None and axis == a.ndim - 1:
            return fused.softmax(a, mask)
        # one full-size temporary, then everything in place: scores are the biggest arrays
        # of attention (B x H x T x T)
        if mask is not None:
            e = xp.where(mask, a, xp.asarray(-xp.inf, dtype=a.dtype))
            m = xp.max(e, axis=axis, keepdims=True)
            m = xp.where(xp.isfinite(m), m, xp.asarray(0, dtype=a.dtype))
            e -= m
        else:
            e = a - xp.max(a, axis=axis, keepdims=True)
        xp.exp(e, out=e)
        s = xp.sum(e, axis=axis, keepdims=True)
        if mask is not None:
            s = xp.where(s > 0, s, xp.asarray(1, dtype=a.dtype))  # empty rows: 0 / 1 = 0
        e /= s
        return e

    def backward(self, g):
        y = self.output
        fused = fused_kernels(self, y.data, g.data)
        if fused is not None and self.axis == y.ndim - 1 and not is_grad_enabled():
            return (const(g, fused.softmax_backward(y.data, g.data)),)
        if not is_grad_enabled():  # the same formula on arrays, with one temporary
            if self.axis == y.ndim - 1:
                dot = row_dot(self.xp, g.data, y.data)
            else:
                dot = self.xp.sum(g.data * y.data, axis=self.axis, keepdims=True)
            out = g.data - dot
            out *= y.data
            return (const(g, out),)
        return (y * (g - (g * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    def forward(self, a, axis):
        xp = self.xp
        self.axis = axis
        if a.ndim == 0:  # log of a one-entry distribution (CuPy has no axis 0 on 0-d arrays)
            return xp.zeros_like(a)
        fused = fused_kernels(self, a)
        if fused is not None and axis == a.ndim - 1:
            return fused.log_softmax(a)
        m = xp.max(a, axis=axis, keepdims=True)
        shifted = a - m
        shifted -= xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
        return shifted

    def backward(self, g):
        y = self.output
        fused = fused_kernels(self, y.data, g.data)
        if fused is not None and self.axis == y.ndim - 1 and not is_grad_enabled():
            return (const(g, fused.log_softmax_backward(y.data, g.data)),)
        return (g - y.exp() * g.sum(axis=self.axis, keepdims=True),)


class CrossEntropy(Function):
    """Mean (or sum, or per-position) negative log-likelihood of integer targets, from logits.

    logits (..., C), targets (...). Positions whose target is `ignore_index` count for
    nothing, and the mean is over the counted positions. With label smoothing eps the
    target distribution is (1 - eps) one-hot + eps / C. The gradient is
    (softmax(logits) - target distribution) * weight, computed from saved probabilities.
    """

    def forward(self, logits, targets, ignore_index, label_smoothing, reduction):
        xp = self.xp
        self.reduction, self.eps = reduction, label_smoothing
        valid = targets != ignore_index
        self.fused, self.ignore_index = fused_kernels(self, logits), ignore_index
        if self.fused is not None:
            # one kernel; backward recomputes the probabilities from two numbers per row
            loss, stats = self.fused.cross_entropy(logits, targets, ignore_index, label_smoothing)
            self.saved = (stats, targets, valid)
            if reduction != "none":
                loss = xp.sum(loss)
            if reduction == "mean":
                self.count = int(xp.sum(valid))
                loss = loss / max(self.count, 1)
            return loss.astype(logits.dtype)
        safe_targets = xp.where(valid, targets, 0)
        m = xp.max(logits, axis=-1, keepdims=True)
        # work on logits - m: near the max it is exact, while log-sum-exp itself would be
        # rounded at the scale of |logits| (1e-3 for float32 logits of 1e4)
        shifted = logits - m
        e = xp.exp(shifted)
        s = xp.sum(e, axis=-1, keepdims=True)
        log_s = xp.log(s)[..., 0]
        picked = xp.take_along_axis(shifted, safe_targets[..., None], axis=-1)[..., 0]
        loss = log_s - picked
        if label_smoothing:
            loss = (1 - label_smoothing) * loss + label_smoothing * (log_s - xp.mean(shifted, axis=-1))
        loss = xp.where(valid, loss, xp.asarray(0, dtype=logits.dtype))
        e /= s
        self.saved = (e, safe_targets, valid)
        if reduction == "none":
            return loss
        total = xp.sum(loss)
        if reduction == "sum":
            return total
        self.count = int(xp.sum(valid))
        return total / max(self.count, 1)

    def backward(self, g):
        xp = self.xp
        probs, targets, valid = self.saved
        logits = self.inputs[0]
        if self.fused is not None:  # saved: per-row stats and the raw targets
            if not is_grad_enabled():
                scale = g.data / max(self.count, 1) if self.reduction == "mean" else g.data
                return (const(g, self.fused.cross_entropy_backward(
                    logits.data, targets, probs, scale, self.ignore_index, self.eps)), None)
            targets = xp.where(valid, targets, 0)
        C = logits.shape[-1]
        # when differentiating twice the probabilities must be a function of the logits
        p = logits.softmax(-1) if is_grad_enabled() else const(g, probs)
        onehot = xp.zeros(logits.shape, dtype=logits.dtype)
        xp.put_along_axis(onehot, targets[..., None], 1, axis=-1)
        target_dist = (1 - self.eps) * onehot + self.eps / C
        weight = valid.astype(logits.dtype)[..., None]
        if self.reduction == "mean":
            weight = weight / max(self.count, 1)
        if self.reduction == "none":
            g = g.reshape(g.shape + (1,))
        return (g * (p - const(g, target_dist)) * const(g, weight), None)


class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis, forward and backward fused.

    Once-differentiable: backward works on saved arrays. `F.layer_norm(..., fused=False)`
    builds the same function from primitives for higher-order gradients.
    """

    once_differentiable = True

    def forward(self, x, weight, bias, eps):
        xp = self.xp
        self.fused = fused_kernels(self, x, weight, bias)
        if self.fused is not None:
            y, mean, rstd = self.fused.layer_norm(x, weight, bias, eps)
            self.saved = (mean, rstd)  # per row; xhat is recomputed in backward
            return y
        inv_d = 1.0 / x.shape[-1]
        xhat = x - row_sum(xp, x) * inv_d
        var = row_dot(xp, xhat, xhat)
        var *= inv_d
        var += eps
        rstd = 1.0 / xp.sqrt(var)
        xhat *= rstd  # in place: centered becomes xhat
        self.saved = (xhat, rstd)
        y = xhat * weight
        y += bias
        return y

    def backward(self, g):
        xp = self.xp
        xhat, rstd = self.saved
        x, weight, bias = self.inputs
        if self.fused is not None:  # saved: per-row mean and rstd
            grads = self.fused.layer_norm_backward(x.data, weight.data, g.data, xhat, rstd, x.requires_grad,
                                                   weight.requires_grad, bias.requires_grad)
            return tuple(None if a is None else const(g, a) for a in grads)
        gd = g.data
        inv_d = 1.0 / gd.shape[-1]
        gx = None
        if x.requires_grad:
            gxhat = gd * weight.data
            proj = row_dot(xp, gxhat, xhat)
            proj *= inv_d
            proj = proj * xhat
            gxhat -= row_sum(xp, gxhat) * inv_d
            gxhat -= proj
            gxhat *= rstd  # in place: gxhat becomes gx
            gx = const(g, gxhat)
        rows, xhat_rows = gd.reshape(-1, gd.shape[-1]), xhat.reshape(-1, gd.shape[-1])
        gw = const(g, column_dot(xp, rows, xhat_rows)) if weight.requires_grad else None
        gb = const(g, column_sum(xp, rows)) if bias.requires_grad else None
        return gx, gw, gb


class Embedding(Function):
    """Rows of a weight matrix picked by integer ids; the gradient is scatter-added back
    (ids that repeat accumulate), and the `padding_idx` row gets none."""

    def forward(self, weight, ids, padding_idx):
        self.ids, self.padding_idx = ids, padding_idx
        return weight[ids]

    def backward(self, g):
        from .shape import ScatterAdd
        if self.padding_idx is not None:
            keep = (self.ids != self.padding_idx).astype(g.dtype)[..., None]
            g = g * const(g, keep)
        return (ScatterAdd.apply(g, index=(self.ids,), shape=self.inputs[0].shape),)
