"""Neural-network ops: softmax, log_softmax, cross_entropy, layer_norm, embedding.

Each forward is one named kernel of the backend (backend/array_kernels.py on the CPU,
CUDA kernels on the GPU), and keeps the max-subtraction that makes it finite for
logits of +-1e4. Each `backward` is the derivative written with Tensor ops (what
`create_graph=True` differentiates again); `fast_backward` is the backend's kernel for
the same derivative on arrays, which the engine runs when no graph is recorded.
"""
from ..autograd import Function
from ..dtypes import accumulator
from .elementwise import const


class Softmax(Function):
    """softmax over `axis`; with a boolean `mask` (True = keep), masked entries get 0.

    A row with every entry masked gives all zeros (and zero gradient), not NaN.
    """

    def forward(self, a, axis, mask=None):
        self.axis = axis
        return self.backend.softmax(a, axis, mask)

    def backward(self, g):
        y = self.output  # dx = y (g - sum(g y))
        return (y * (g - (g * y).sum(axis=self.axis, keepdims=True)),)

    def fast_backward(self, g):
        return (self.backend.softmax_backward(self.output.data, g, self.axis),)


class LogSoftmax(Function):
    def forward(self, a, axis):
        self.axis = axis
        return self.backend.log_softmax(a, axis)

    def backward(self, g):
        y = self.output  # dx = g - softmax * sum(g)
        return (g - y.exp() * g.sum(axis=self.axis, keepdims=True),)

    def fast_backward(self, g):
        return (self.backend.log_softmax_backward(self.output.data, g, self.axis),)


class CrossEntropy(Function):
    """Mean (or sum, or per-position) negative log-likelihood of integer targets, from logits.

    logits (..., C), targets (...). Positions whose target is `ignore_index` count for
    nothing, and the mean is over the counted positions. With label smoothing eps the
    target distribution is (1 - eps) one-hot + eps / C. The gradient is
    (softmax(logits) - target distribution) * weight.
    """

    def forward(self, logits, targets, ignore_index, label_smoothing, reduction):
        xp = self.xp
        self.ignore_index, self.eps, self.reduction = ignore_index, label_smoothing, reduction
        loss, self.saved = self.backend.cross_entropy(logits, targets, ignore_index, label_smoothing)
        # the count stays an array: int() of it would make the host wait for the GPU
        self.count = xp.maximum(xp.sum(targets != ignore_index), 1).astype(accumulator(loss.dtype)) if reduction == "mean" else 1
        if reduction == "none":
            return loss
        total = xp.sum(loss, dtype=accumulator(loss.dtype))  # float16 losses add up in float32
        return (total if reduction == "sum" else total / self.count).astype(loss.dtype)

    def backward(self, g):
        xp = self.xp
        logits, targets = self.inputs
        valid = targets.data != self.ignore_index
        onehot = xp.zeros(logits.shape, dtype=logits.dtype)
        xp.put_along_axis(onehot, xp.where(valid, targets.data, 0)[..., None], 1, axis=-1)
        target_dist = (1 - self.eps) * onehot + self.eps / logits.shape[-1]
        weight = (valid.astype(logits.dtype)[..., None] / self.count).astype(logits.dtype, copy=False)
        if self.reduction == "none":
            g = g.reshape(g.shape + (1,))
        return g * (logits.softmax(-1) - const(g, target_dist)) * const(g, weight), None

    def fast_backward(self, g):
        logits, targets = self.inputs
        return self.backend.cross_entropy_backward(logits.data, targets.data, self.saved,
                                                   (g / self.count).astype(g.dtype, copy=False),
                                                   self.ignore_index, self.eps), None


class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis."""

    def forward(self, x, weight, bias, eps):
        self.eps = eps
        y, self.saved = self.backend.layer_norm(x, weight, bias, eps)
        return y

    def backward(self, g):
        x, weight, _ = self.inputs
        centered = x - x.mean(-1, keepdims=True)
        rstd = ((centered * centered).mean(-1, keepdims=True) + self.eps) ** -0.5
        xhat = centered * rstd
        gw = g * weight
        dx = rstd * (gw - gw.mean(-1, keepdims=True) - xhat * (gw * xhat).mean(-1, keepdims=True))
        rows = tuple(range(x.ndim - 1))
        return dx, (g * xhat).sum(axis=rows), g.sum(axis=rows)

    def fast_backward(self, g):
        x, weight, bias = self.inputs
        needs = (x.requires_grad, weight.requires_grad, bias.requires_grad)
        return self.backend.layer_norm_backward(x.data, weight.data, g, self.saved, needs)


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
