"""Attention's core, softmax(scale q k^T + mask) v, as one op.

    forward   S = scale q k^T + mask (-inf where not allowed);  P = softmax(S);  O = (P * keep) v
    backward  dV = (P keep)^T dO;  dP = (dO v^T) keep;  dS = P (dP - rowsum(dP P));
              dQ = scale dS k;  dK = scale dS^T q;  dMask = dS

`keep` is dropout's multiplier per weight (0 or 1/(1-p)), or None. A query with
nothing to attend to gets P = 0, so O = 0 and zero gradients. The mask enters the
scores by addition, so its gradient is the scores' own, dS (a learned bias needs it; the
engine sums it back over the axes a small mask broadcasts along); where P = 0 it is 0.

The forward is the backend's `attention` kernel: the (..., Tq, Tk) scores are one
array updated in place and only P is saved; q, k, v may be strided views (the heads of
one projection) and are read in place. `backward` is the formula above in Tensor ops,
so attention can be differentiated twice; `fast_backward` is the backend's kernel for
it. `F.scaled_dot_product_attention` is the public face (and the place that writes the
same maths step by step, as Tensors, for anyone who wants to look inside).
"""
from ..autograd import Function
from .elementwise import const
from .nn import Softmax


class Attention(Function):
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv)[, mask] -> (..., Tq, dv).

    `mask`: an optional fourth input, a float Tensor broadcasting to (..., Tq, Tk) added to
    the scaled scores (0 or a bias where allowed, -inf where not); it may require grad.
    `keep`: dropout multipliers of the scores' shape, or None.
    """

    def forward(self, q, k, v, mask=None, scale=1.0, keep=None):
        self.scale, self.keep = scale, keep
        out, self.saved = self.backend.attention(q, k, v, mask, scale, keep)
        return out

    def backward(self, g):
        q, k, v = self.inputs[:3]
        mask = self.inputs[3] if len(self.inputs) > 3 else None
        scores = (q @ k.swapaxes(-1, -2)) * self.scale
        allowed = None
        if mask is not None:
            scores = scores + mask
            allowed = self.xp.isfinite(mask.data)
        p = Softmax.apply(scores, axis=-1, mask=allowed)
        keep = None if self.keep is None else const(g, self.keep)
        dv = (p if keep is None else p * keep).swapaxes(-1, -2) @ g
        dp = g @ v.swapaxes(-1, -2)
        if keep is not None:
            dp = dp * keep
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))  # dL/d(scores): also the mask's gradient
        grads = ((ds @ k) * self.scale, (ds.swapaxes(-1, -2) @ q) * self.scale, dv)
        return grads if mask is None else grads + (ds if mask.requires_grad else None,)

    def fast_backward(self, g):
        q, k, v = (t.data for t in self.inputs[:3])
        mask_grad = len(self.inputs) > 3 and self.inputs[3].requires_grad
        dq, dk, dv, ds = self.backend.attention_backward(q, k, v, self.saved, self.keep, g, self.scale, mask_grad)
        return (dq, dk, dv) if len(self.inputs) == 3 else (dq, dk, dv, ds)
