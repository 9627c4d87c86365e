"""Neural-network modules: `from tinygrad_attn import nn`.

Module/Parameter (registration, state_dict, to(device)), layers, multi-head attention
with a KV cache, and the pre-norm transformer block. See each file's docstring.
"""
from . import init
from .activations import (ACTIVATIONS, CELU, ELU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid,
                          LogSoftmax, Mish, ReLU6, SiLU, Sigmoid, Softmax, Softplus, Softsign, Tanh)
from .attention import KVCache, LayerKVCache, MultiHeadAttention
from .layers import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ModuleDict, ModuleList,
                     PositionalEmbedding, ReLU, Sequential, SinusoidalPositionalEmbedding, sinusoid_table)
from .module import IncompatibleKeys, Module, Parameter
from .transformer import TransformerBlock

__all__ = [
    "init", "Module", "Parameter", "IncompatibleKeys",
    "Linear", "Embedding", "LayerNorm", "Dropout", "GELU", "ReLU", "Identity", *ACTIVATIONS,
    "Sequential", "ModuleList", "ModuleDict",
    "PositionalEmbedding", "SinusoidalPositionalEmbedding", "sinusoid_table",
    "MultiHeadAttention", "KVCache", "LayerKVCache", "TransformerBlock",
]
