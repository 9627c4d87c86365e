"""Building-block layers: Linear, Embedding, LayerNorm, Dropout, activations, containers, position tables.

Initialisation follows GPT-2/BERT practice: weights ~ normal(0, 0.02) from the
backend's seeded generator, biases 0, LayerNorm weight 1 and bias 0.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..backend import get_backend
from ..errors import ShapeError
from ..factories import arange, ones, zeros
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), as in PyTorch.

    `init_std` is the std of W's normal init; models pass 0.02/sqrt(2 n_layers) for the
    projections that write into the residual stream (GPT-2's scaled init).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_std: float = 0.02):
        super().__init__()
        self.in_features, self.out_features, self.init_std = in_features, out_features, init_std
        self.weight = init.normal_(Parameter(zeros(out_features, in_features)), std=init_std)
        self.bias = Parameter(zeros(out_features)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim); the `padding_idx` row starts at 0 and gets no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, init_std: float = 0.02):
        super().__init__()
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} is outside [0, {num_embeddings})")
        if padding_idx is not None:
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = init.normal_(Parameter(zeros(num_embeddings, embedding_dim)), std=init_std)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """Normalise over the last axis (size `normalized_shape`), then scale by weight and shift by bias.

    One op (a backend kernel forward and backward), differentiable any number of times.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5):
        super().__init__()
        if not isinstance(normalized_shape, (int, np.integer)):
            (normalized_shape,) = tuple(normalized_shape)  # accept (d,) like PyTorch, nothing wider
        self.normalized_shape, self.eps = int(normalized_shape), eps
        self.weight = Parameter(ones(self.normalized_shape))
        self.bias = Parameter(zeros(self.normalized_shape))

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Zero elements with probability p while training (scaling the rest by 1/(1-p)); identity in eval()."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    def __init__(self, approximate: str = "tanh"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Identity(Module):
    def forward(self, x, *args, **kwargs):
        return x


# ---------------------------------------------------------------- containers

class ModuleList(Module):
    """A list of modules whose parameters are registered (names "0", "1", ...)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def _items(self):
        return list(self._modules.values())

    def _renumber(self, items):
        self._modules.clear()
        for i, m in enumerate(items):
            self.register_module(str(i), m)

    @classmethod
    def _from_items(cls, items):
        return cls(items)

    def __getitem__(self, index):
        items = self._items()
        return self._from_items(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index, module):
        items = self._items()
        items[index] = module
        self._renumber(items)

    def __delitem__(self, index):
        items = self._items()
        del items[index]
        self._renumber(items)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._items())

    def append(self, module) -> "ModuleList":
        self.register_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> None:
        items = self._items()
        items.insert(index, module)
        self._renumber(items)


class Sequential(ModuleList):
    """Modules applied one after another: Sequential(a, b)(x) == b(a(x))."""

    def __init__(self, *modules):
        super().__init__(modules)

    @classmethod
    def _from_items(cls, items):
        return cls(*items)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleDict(Module):
    """A dict of modules whose parameters are registered under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.register_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules) -> None:
        for k, m in (modules.items() if hasattr(modules, "items") else modules):
            self[k] = m


# ---------------------------------------------------------------- positions

def _position_ids(positions, offset, max_len, device, who):
    """Integer positions on `device`: arange(offset, offset + n) for an int n, or the given ids + offset."""
    if isinstance(positions, (int, np.integer)):
        start, stop = offset, offset + int(positions)
        if stop > max_len or start < 0:
            raise ShapeError(f"{who}: positions [{start}, {stop}) do not fit max_len={max_len}; "
                             "build the model with a larger max_len or feed a shorter sequence")
        return arange(start, stop, device=device)
    data = positions.data if isinstance(positions, Tensor) else get_backend(device).asarray(positions)
    backend = get_backend(device)
    ids = backend.asarray(data) + offset
    if ids.size and backend.checks_values() and (int(ids.min()) < 0 or int(ids.max()) >= max_len):  # free on the host
        raise ShapeError(f"{who}: positions span [{int(ids.min())}, {int(ids.max())}] but max_len={max_len}")
    return Tensor.wrap(ids, device)


class PositionalEmbedding(Module):
    """Learned absolute positions: a (max_len, dim) table.

    forward(seq_len, offset=0) -> (seq_len, dim) rows offset..offset+seq_len-1 (offset is
    the KV cache length when decoding); forward(positions, offset=0) -> positions.shape + (dim,).
    """

    def __init__(self, max_len: int, dim: int, init_std: float = 0.02):
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.weight = init.normal_(Parameter(zeros(max_len, dim)), std=init_std)

    def forward(self, positions, offset: int = 0):
        ids = _position_ids(positions, offset, self.max_len, self.weight.device, "PositionalEmbedding")
        return F.embedding(ids, self.weight)

    def extra_repr(self):
        return f"max_len={self.max_len}, dim={self.dim}"


def sinusoid_table(max_len: int, dim: int) -> np.ndarray:
    """The fixed table of "Attention Is All You Need": sin on even columns, cos on odd, float32."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    freq = np.exp(-math.log(10000.0) * np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((max_len, dim))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: dim // 2])
    return table.astype(np.float32)


class SinusoidalPositionalEmbedding(Module):
    """Fixed sine/cosine positions, kept as a non-persistent buffer (rebuilt, never saved).

    Same call as PositionalEmbedding: forward(seq_len or positions, offset=0).
    """

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len, self.dim = max_len, dim
        self.register_buffer("table", Tensor(sinusoid_table(max_len, dim)), persistent=False)

    def forward(self, positions, offset: int = 0):
        ids = _position_ids(positions, offset, self.max_len, self.table.device, "SinusoidalPositionalEmbedding")
        return F.embedding(ids, self.table)

    def extra_repr(self):
        return f"max_len={self.max_len}, dim={self.dim}"
