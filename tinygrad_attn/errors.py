"""The error hierarchy: every error we raise on purpose derives from TinygradAttnError
and from the builtin it refines, so `except ValueError` keeps working for callers."""


class TinygradAttnError(Exception):
    """Base class of the errors raised by tinygrad_attn."""


class ShapeError(TinygradAttnError, ValueError):
    """Shapes that do not fit the op (matmul, broadcast, reshape, cat, ...)."""


class DTypeError(TinygradAttnError, TypeError):
    """A dtype the op cannot take (e.g. gradients asked of an integer tensor)."""


class DeviceError(TinygradAttnError, RuntimeError):
    """Tensors on different devices in one op, or a device that is not available."""


class GraphError(TinygradAttnError, RuntimeError):
    """Misuse of the autograd graph: backward through a freed graph, non-scalar backward without grad."""


class CheckpointError(TinygradAttnError, ValueError):
    """A checkpoint that is missing, truncated, corrupted or does not match the model."""


class DistributedError(TinygradAttnError, RuntimeError):
    """Data-parallel training that cannot run: no mpi4py, ranks whose models differ, a batch that does not split."""


class MPIMissingError(DistributedError, ImportError):
    """Data-parallel training asked for, but mpi4py (or its MPI library) is not installed."""
