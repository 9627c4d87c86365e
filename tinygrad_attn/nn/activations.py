"""Activation modules: each wraps one function of `F` and its keyword arguments
(`nn.SiLU()`, `nn.LeakyReLU(negative_slope=0.2)`, ...), as PyTorch's do."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class _Activation(Module):
    """A module that calls F.<function>(x, **options)."""

    function = None

    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, x):
        return getattr(F, self.function)(x, **self.options)

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


def _activation(name, function, signature=()):
    """A module class for F.<function>; `signature` names its options in positional order."""
    def __init__(self, *args, **options):
        _Activation.__init__(self, **dict(zip(signature, args)), **options)
    return type(name, (_Activation,), {"function": function, "__init__": __init__,
                                       "__doc__": f"Module form of F.{function}."})


SiLU = _activation("SiLU", "silu")
Softplus = _activation("Softplus", "softplus", ("beta", "threshold"))
LeakyReLU = _activation("LeakyReLU", "leaky_relu", ("negative_slope",))
ELU = _activation("ELU", "elu", ("alpha",))
SELU = _activation("SELU", "selu")
CELU = _activation("CELU", "celu", ("alpha",))
Mish = _activation("Mish", "mish")
Hardtanh = _activation("Hardtanh", "hardtanh", ("min_val", "max_val"))
ReLU6 = _activation("ReLU6", "relu6")
Hardsigmoid = _activation("Hardsigmoid", "hardsigmoid")
Hardswish = _activation("Hardswish", "hardswish")
LogSigmoid = _activation("LogSigmoid", "logsigmoid")
Softsign = _activation("Softsign", "softsign")
Tanh = _activation("Tanh", "tanh")
Sigmoid = _activation("Sigmoid", "sigmoid")
Softmax = _activation("Softmax", "softmax", ("axis",))
LogSoftmax = _activation("LogSoftmax", "log_softmax", ("axis",))

ACTIVATIONS = ["SiLU", "Softplus", "LeakyReLU", "ELU", "SELU", "CELU", "Mish", "Hardtanh", "ReLU6", "Hardsigmoid",
               "Hardswish", "LogSigmoid", "Softsign", "Tanh", "Sigmoid", "Softmax", "LogSoftmax"]
