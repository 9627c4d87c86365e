"""The public functions (imported as `F`): argument checks, composites, and the primitive ops.

Every op is reachable here; Tensor methods forward to these. Arguments are checked
here, before any array work, so that a mistake reads as `matmul: cannot multiply ...`
and not as a NumPy traceback. Composites (mean, var, stack, split, attention, ...)
are written from the primitives in `ops/`, so their gradients come for free.

One module per theme:
  elementwise.py  arithmetic, unary maths, activations, where/masked_fill/clip, comparisons
  maths.py        trigonometry, asinh/acosh/atanh, rounding, copysign, isnan/isinf/isclose, log2/exp2,
                  logaddexp, lerp, //, %, fmod
  bitwise.py      bitwise and/or/xor/not and shifts of integer and boolean tensors
  activations.py  silu, softplus, leaky_relu, elu, selu, celu, mish, hard*, logsigmoid, softsign, quick_gelu
  reduce.py       sum, mean, max, min, var, logsumexp, argmax
  scans.py        prod, std, any, all, argmin, cumsum, cumprod, logcumsumexp, sort, argsort, topk, softmin, normalize
  linalg.py       matmul, linear
  einsum.py       einsum (diagonal, sum, permute, matmul)
  shape.py        reshape, permute, transpose, expand, cat, stack, split, indexing, gather, embedding
  arrange.py      tril, triu, flip, pad, roll, repeat, repeat_interleave, unflatten, diag, diagonal
  indexing.py     scatter, scatter_add, masked_select, one_hot, nonzero
  nn.py           softmax, log_softmax, cross_entropy, dropout, layer_norm
  losses.py       nll_loss, binary_cross_entropy(_with_logits), mse/l1/smooth_l1/huber, soft-label cross entropy
  attention.py    scaled_dot_product_attention, causal_mask
  convert.py      to_device, cast
  table.py        the op table: every op once, with its NumPy reference, domain and tolerances
"""
from .elementwise import *  # noqa: F401,F403
from .maths import *  # noqa: F401,F403
from .bitwise import *  # noqa: F401,F403
from .activations import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .scans import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .arrange import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
from .einsum import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .convert import *  # noqa: F401,F403
from ._common import require_broadcast  # noqa: F401
from . import table as _table
from ..tensor import Tensor as _Tensor
import sys as _sys

_table.install_tensor_methods(_Tensor, _sys.modules[__name__])
