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


class NonFiniteError(TinygradAttnError, FloatingPointError):
    """The loss or the gradient norm became NaN or infinite; training stopped without updating."""


class TokenizerError(TinygradAttnError, ValueError):
    """A tokenizer file that cannot be read or parsed, or a tokenizer that does not fit the model."""


class DataError(TinygradAttnError, ValueError):
    """A training text that is missing, not a file, not UTF-8, empty, too short, or changed since the run began."""


class UnsafeFileError(TinygradAttnError, OSError):
    """A file that is not the kind expected (a FIFO, a device, a directory), larger than a reader
    allows, or JSON nested deeper than it allows: refused before anything is read or built."""


class ConfigError(TinygradAttnError, ValueError):
    """A model or training setting of the wrong type or out of range."""


class RunInUseError(TinygradAttnError, RuntimeError):
    """Another process is training in the same run directory."""


class DistributedError(TinygradAttnError, RuntimeError):
    """Data-parallel training that cannot run: no mpi4py, ranks whose models differ, a batch that does not split."""


class MPIMissingError(DistributedError, ImportError):
    """Data-parallel training asked for, but mpi4py (or its MPI library) is not installed."""
