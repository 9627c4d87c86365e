"""Attention's core, softmax(scale q k^T + mask) v, as one op.

    forward   S = scale q k^T + mask (-inf where not allowed);  P = softmax(S);  O = (P * keep) v
    backward  dV = (P keep)^T dO;  dP = (dO v^T) keep;  dS = P (dP - rowsum(dP P));
              dQ = scale dS k;  dK = scale dS^T q

`keep` is dropout's multiplier per weight (0 or 1/(1-p)), or None. A query with
nothing to attend to gets P = 0, so O = 0 and zero gradients.

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
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv).

    `mask`: a float array broadcasting to (..., Tq, Tk) added to the scaled scores (0 where
    allowed, -inf where not), or None. `keep`: dropout multipliers of the scores' shape, or None.
    """

    def forward(self, q, k, v, mask, scale, keep):
        self.mask, self.scale, self.keep = mask, scale, keep
        out, self.saved = self.backend.attention(q, k, v, mask, scale, keep)
        return out

    def backward(self, g):
        q, k, v = self.inputs
        xp = self.xp
        scores = (q @ k.swapaxes(-1, -2)) * self.scale
        allowed = None
        if self.mask is not None:
            scores = scores + const(g, self.mask)
            allowed = xp.isfinite(self.mask)
        p = Softmax.apply(scores, axis=-1, mask=allowed)
        keep = None if self.keep is None else const(g, self.keep)
        dv = (p if keep is None else p * keep).swapaxes(-1, -2) @ g
        dp = g @ v.swapaxes(-1, -2)
        if keep is not None:
            dp = dp * keep
        ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * self.scale
        return ds @ k, ds.swapaxes(-1, -2) @ q, dv

    def fast_backward(self, g):
        q, k, v = (t.data for t in self.inputs)
        return self.backend.attention_backward(q, k, v, self.saved, self.keep, g, self.scale)
