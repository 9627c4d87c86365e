"""Matrix product of operands with at least 2 dims; batch dims broadcast (the walk sums them back)."""
from ..autograd import Function
from .reduce import array_sum


def product(backend, a, b):
    """a @ b of arrays; (..., K) @ (K, N) as one large GEMM instead of a loop of small ones."""
    if a.ndim > 2 and b.ndim == 2:
        return backend.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
    return backend.matmul(a, b)


class MatMul(Function):
    def forward(self, a, b):
        return product(self.backend, a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = g @ b.swapaxes(-1, -2) if a.requires_grad else None
        if not b.requires_grad:
            gb = None
        elif a.ndim > 2 and b.ndim == 2:
            # sum over the batch inside one GEMM rather than materializing a gradient per batch item
            gb = a.reshape(-1, a.shape[-1]).swapaxes(0, 1) @ g.reshape(-1, g.shape[-1])
        else:
            gb = a.swapaxes(-1, -2) @ g
        return ga, gb

    def fast_backward(self, g):
        # the products above on arrays (the walk sums broadcast batch axes back, as for backward)
        a, b = self.inputs
        ga = product(self.backend, g, b.data.swapaxes(-1, -2)) if a.requires_grad else None
        if not b.requires_grad:
            gb = None
        elif a.ndim > 2 and b.ndim == 2:
            gb = self.backend.matmul(a.data.reshape(-1, a.shape[-1]).T, g.reshape(-1, g.shape[-1]))
        else:
            gb = product(self.backend, a.data.swapaxes(-1, -2), g)
        return ga, gb


class Linear(Function):
    """x @ weight.T (+ bias) with weight (out, in), as PyTorch's addmm: the bias is added in
    place into the product instead of through a second full-size temporary.

    backward  dx = g weight;  dweight = g^T x;  dbias = sum of g over rows (all leading axes)"""

    def forward(self, x, weight, bias=None):
        out = self.backend.matmul(x.reshape(-1, x.shape[-1]), weight.T)
        if bias is not None:
            out += bias
        return out.reshape(x.shape[:-1] + weight.shape[:1])

    def backward(self, g):
        x, weight = self.inputs[:2]
        g2 = g.reshape(-1, g.shape[-1])
        gx = g @ weight if x.requires_grad else None
        gw = g2.T @ x.reshape(-1, x.shape[-1]) if weight.requires_grad else None
        if len(self.inputs) == 2:
            return gx, gw
        if not self.inputs[2].requires_grad:
            return gx, gw, None
        return gx, gw, g2.sum(axis=0)

    def fast_backward(self, g):
        # the same three products on arrays, each one GEMM over all rows (a small model's step
        # has ~50 of them: 0.96x at nanoGPT's size, paired), and the bias summed as the Sum op sums it
        x, weight = (t.data for t in self.inputs[:2])
        rows = g.reshape(-1, g.shape[-1])
        gx = self.backend.matmul(rows, weight).reshape(x.shape) if self.inputs[0].requires_grad else None
        gw = self.backend.matmul(rows.T, x.reshape(-1, x.shape[-1])) if self.inputs[1].requires_grad else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (array_sum(self.backend, rows, (0,), False) if self.inputs[2].requires_grad else None)
