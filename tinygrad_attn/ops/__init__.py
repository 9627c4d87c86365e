"""The primitive ops: each a Function with its forward and backward side by side.

elementwise.py  arithmetic, unary math, activations, where/masked_fill/clip
unary.py        trigonometry, softplus, and the rounding functions (zero gradient)
reduce.py       sum, max, min, logsumexp, cumsum, cumprod
shape.py        reshape, permute, expand, cat, getitem and its adjoint scatter
linalg.py       matmul, linear
attention.py    the attention core as one op: softmax(scale q k^T + mask) v
nn.py           softmax, log_softmax, cross_entropy, layer_norm, embedding
convert.py      moving between devices and dtypes
"""
