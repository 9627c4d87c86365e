"""Tensor: an n-dimensional array on a device, and the node of the graph that computed it.

Methods are thin: each forwards to the op in `functional` (the one place where
arguments are checked) so that `x.softmax(-1)` and `F.softmax(x, -1)` are the same code.
"""
from __future__ import annotations

import numpy as np

from . import autograd
from .backend import _BACKENDS, CPU as DEFAULT_DEVICE, backend_of_array, get_backend, normalize_device
from .dtypes import DEFAULT_FLOAT as _FLOAT_DEFAULT, is_float as _is_float
from .errors import DTypeError, GraphError, ShapeError


_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def _host_values(data):
    """Python data (numbers, nested lists, Tensors inside lists) as a NumPy array of numbers.

    A list of Tensors becomes their values stacked, as with `stack` (NumPy alone made an object
    array of them, then truncated it to ints); strings and None are refused, not stored."""
    def plain(item):
        if isinstance(item, Tensor):
            return item.numpy()
        if isinstance(item, (list, tuple)):
            return [plain(x) for x in item]
        return item
    try:
        array = np.asarray(plain(data))
    except ValueError as e:  # ragged nesting
        raise ShapeError(f"Tensor: the data's nested lists have different lengths ({e})") from None
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise _not_numeric(array)
    return array


def _not_numeric(array):
    kinds = {"U": "strings", "S": "bytes", "O": "Python objects (None, or a mix of types)", "c": "complex numbers"}
    return DTypeError(f"Tensor: data must be numbers or booleans, got {kinds.get(array.dtype.kind, array.dtype)} "
                      f"(NumPy dtype {array.dtype}, shape {array.shape})")


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_device", "_hooks", "_post_hooks", "_retains_grad",
                 "__weakref__")
    __array_priority__ = 1000  # so `ndarray + Tensor` calls our reflected operator

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        elif not hasattr(data, "dtype"):
            data = _host_values(data)
            if dtype is None:  # Python numbers and lists: floats become float32 (the default), ints int64
                dtype = _FLOAT_DEFAULT if data.dtype.kind == "f" else data.dtype
        elif data.dtype.kind not in _NUMERIC_KINDS:
            raise _not_numeric(data)
        if device is None:
            backend = backend_of_array(data) if hasattr(data, "dtype") else get_backend("cpu")
        else:
            backend = get_backend(normalize_device(device))
        self.data = backend.asarray(data, dtype=dtype)
        self._device = backend.device
        self.grad = None
        self._ctx = None
        self._hooks = self._post_hooks = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def wrap(cls, data, device, requires_grad=False):
        """A Tensor around an array already on `device`, without a copy (op outputs, constants)."""
        t = cls.__new__(cls)
        if not hasattr(data, "shape"):  # NumPy reductions return scalars, not 0-d arrays
            data = np.asarray(data)
        t.data, t._device, t.requires_grad = data, device, requires_grad
        t.grad = t._ctx = t._hooks = t._post_hooks = None
        t._retains_grad = False
        return t

    # ---- properties -------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return self._device

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def backend(self):
        """The backend (array namespace, kernels, generator) of this tensor's device."""
        return _BACKENDS[self._device]  # it exists already: the tensor's data was made by it

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        # like PyTorch's grad_fn: the op that made this tensor (leaves that need grad say so instead)
        grad = f", grad_fn={type(self._ctx).__name__}" if self._ctx is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        dev = "" if self.device == DEFAULT_DEVICE else f", device='{self.device}'"
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{dev}{grad})"

    # ---- conversion -------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied to the host from a GPU)."""
        return self.backend.to_host(self.data)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item(): only a tensor with one element has an item, this one has shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same values, cut from the graph (shares memory)."""
        return Tensor.wrap(self.data, self._device, False)

    def to(self, device) -> "Tensor":
        """A copy on `device` ("cpu" or "cuda"); the same tensor if it is already there."""
        device = normalize_device(device)
        if device == self._device:
            return self
        from .functional import to_device
        return to_device(self, device)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype) -> "Tensor":
        from .functional import cast
        return cast(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return self.astype(np.int64)

    # ---- autograd ---------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not _is_float(self.dtype):
            raise DTypeError(
                f"requires_grad: only floating-point tensors can require gradients, got dtype {self.dtype} "
                f"with shape {self.shape}; convert with .float() first"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise GraphError("retain_grad(): the tensor does not require grad")
        self._retains_grad = True

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a handle with `.remove()`.
        """
        if not self.requires_grad:
            raise GraphError("register_hook(): the tensor does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call `hook(self)` each time backward has finished adding into this leaf's `.grad`.

        The hook sees the accumulated `.grad` (what an optimizer would use) and returns
        nothing; data-parallel training uses it to send gradients while backward goes on.
        Returns a handle with `.remove()`.
        """
        if not self.requires_grad or not self.is_leaf:
            raise GraphError("register_post_accumulate_grad_hook(): only a leaf tensor that requires grad "
                             f"accumulates a .grad; got a {'non-leaf' if self.requires_grad else 'tensor without grad'}"
                             f" of shape {self.shape}")
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        return _HookHandle(self._post_hooks, hook)

    def _store_grad(self, g) -> None:
        self.grad = g if self.grad is None else self.grad + g

    def backward(self, grad=None, retain_graph=False, create_graph=False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`.

        `grad` is required unless self has a single element (then it defaults to 1).
        """
        if not self.requires_grad:
            raise GraphError(
                "backward(): the tensor does not require grad and has no graph; "
                "did you create it under no_grad() or forget requires_grad=True on the inputs?"
            )
        if grad is None:
            if self.size != 1:
                raise GraphError(
                    f"backward(): grad can be implied only for a single-element output, this one has shape "
                    f"{self.shape}; pass grad= of that shape (or reduce it with .sum() first)"
                )
            grad = Tensor.wrap(self.backend.xp.ones(self.shape, dtype=self.dtype), self._device)
        else:
            grad = _as_grad(grad, self)
        autograd.run_backward([self], [grad], retain_graph=retain_graph or create_graph, create_graph=create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ---- operators --------------------------------------------------------
    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __floordiv__(self, other): return F.floor_divide(self, other)
    def __rfloordiv__(self, other): return F.floor_divide(other, self)
    def __mod__(self, other): return F.remainder(self, other)
    def __rmod__(self, other): return F.remainder(other, self)
    def __pow__(self, other): return F.pow(self, other)
    def __rpow__(self, other): return F.pow(other, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __neg__(self): return F.neg(self)
    def __abs__(self): return F.abs(self)
    def __getitem__(self, index): return F.getitem(self, index)

    # comparisons give boolean tensors and are not differentiated
    def __eq__(self, other): return F.compare(self, other, "equal")
    def __ne__(self, other): return F.compare(self, other, "not_equal")
    def __lt__(self, other): return F.compare(self, other, "less")
    def __le__(self, other): return F.compare(self, other, "less_equal")
    def __gt__(self, other): return F.compare(self, other, "greater")
    def __ge__(self, other): return F.compare(self, other, "greater_equal")
    def __invert__(self): return F.invert(self)

    # bitwise, on integer and boolean tensors
    def __and__(self, other): return F.bitwise_and(self, other)
    def __rand__(self, other): return F.bitwise_and(other, self)
    def __or__(self, other): return F.bitwise_or(self, other)
    def __ror__(self, other): return F.bitwise_or(other, self)
    def __xor__(self, other): return F.bitwise_xor(self, other)
    def __rxor__(self, other): return F.bitwise_xor(other, self)
    def __lshift__(self, other): return F.bitwise_left_shift(self, other)
    def __rlshift__(self, other): return F.bitwise_left_shift(other, self)
    def __rshift__(self, other): return F.bitwise_right_shift(self, other)
    def __rrshift__(self, other): return F.bitwise_right_shift(other, self)
    __hash__ = object.__hash__

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())

    # ---- methods (see functional for the documentation of each) -----------
    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def sqrt(self): return F.sqrt(self)
    def tanh(self): return F.tanh(self)
    def sigmoid(self): return F.sigmoid(self)
    def relu(self): return F.relu(self)
    def gelu(self, approximate="tanh"): return F.gelu(self, approximate)
    def abs(self): return F.abs(self)
    def clip(self, min=None, max=None): return F.clip(self, min, max)
    clamp = clip
    def maximum(self, other): return F.maximum(self, other)
    def minimum(self, other): return F.minimum(self, other)
    def masked_fill(self, mask, value): return F.masked_fill(self, mask, value)
    def pow(self, exponent): return F.pow(self, exponent)

    def sum(self, axis=None, keepdims=False, dim=None): return F.sum(self, axis, keepdims, dim=dim)
    def mean(self, axis=None, keepdims=False, dim=None): return F.mean(self, axis, keepdims, dim=dim)
    def max(self, axis=None, keepdims=False, dim=None): return F.max(self, axis, keepdims, dim=dim)
    def min(self, axis=None, keepdims=False, dim=None): return F.min(self, axis, keepdims, dim=dim)
    def var(self, axis=None, keepdims=False, ddof=0, dim=None): return F.var(self, axis, keepdims, ddof, dim=dim)
    def logsumexp(self, axis=None, keepdims=False, dim=None): return F.logsumexp(self, axis, keepdims, dim=dim)
    def argmax(self, axis=None, keepdims=False, dim=None): return F.argmax(self, axis, keepdims, dim=dim)
    def any(self, axis=None, keepdims=False, dim=None): return F.any(self, axis, keepdims, dim=dim)
    def all(self, axis=None, keepdims=False, dim=None): return F.all(self, axis, keepdims, dim=dim)

    def softmax(self, axis=-1, dim=None): return F.softmax(self, axis, dim=dim)
    def log_softmax(self, axis=-1, dim=None): return F.log_softmax(self, axis, dim=dim)

    def reshape(self, *shape): return F.reshape(self, *shape)
    view = reshape
    def flatten(self, start_axis=0, end_axis=-1): return F.flatten(self, start_axis, end_axis)
    def permute(self, *axes): return F.permute(self, *axes)
    def transpose(self, *axes): return F.transpose(self, *axes)
    def swapaxes(self, axis1, axis2): return F.swapaxes(self, axis1, axis2)
    def expand(self, *shape): return F.expand(self, *shape)
    broadcast_to = expand
    def squeeze(self, axis=None, dim=None): return F.squeeze(self, axis, dim=dim)
    def unsqueeze(self, axis): return F.unsqueeze(self, axis)
    def split(self, split_size_or_sections, axis=0, dim=None): return F.split(self, split_size_or_sections, axis, dim=dim)
    def chunk(self, chunks, axis=0, dim=None): return F.chunk(self, chunks, axis, dim=dim)
    def gather(self, axis, index): return F.gather(self, axis, index)
    def matmul(self, other): return F.matmul(self, other)


def _as_grad(grad, like: Tensor) -> Tensor:
    grad = grad if isinstance(grad, Tensor) else Tensor(grad, dtype=like.dtype, device=like.device)
    if grad.shape != like.shape:
        from .errors import ShapeError
        raise ShapeError(f"backward(): grad has shape {grad.shape} but the output has shape {like.shape}")
    return grad


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


from . import functional as F  # noqa: E402  (functional needs Tensor defined first)
