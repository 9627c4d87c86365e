"""The graph: Function (one node per op application), grad mode, and the backward walk.

Every primitive op is a `Function` subclass with `forward` (backend arrays in, one
array out) and `backward` (the output's gradient as a Tensor in, one gradient per
input out), written next to each other in `ops/`. Because `backward` is written
with Tensor operations, running it with grad mode on records a graph of the
gradient itself: that is all `create_graph=True` needs for higher-order gradients.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager

from .errors import DeviceError, DTypeError, GraphError

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextmanager
def _grad_mode(enabled: bool):
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, enabled
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Context manager (and decorator) in which ops record no graph."""
    return _grad_mode(False)


def enable_grad():
    """Context manager that turns graph recording back on inside `no_grad`."""
    return _grad_mode(True)


class Function:
    """One application of a primitive op: remembers its inputs for backward.

    Subclasses define `forward(self, *arrays, **params) -> array` and
    `backward(self, grad) -> tuple of (Tensor | None)`, one entry per input, written
    with Tensor ops: the op's mathematical truth, which `create_graph=True` records.
    `self.inputs` are the input Tensors (their values serve as the saved tensors),
    `self.output` the output Tensor, `self.backend` its backend and `self.xp` the
    array namespace.

    An op may also define `fast_backward(self, grad_array) -> tuple of (array | None)`:
    the same derivative on raw arrays, usually one named kernel of the backend. The
    engine, and nothing else, chooses it whenever no graph of the gradient is recorded
    (tests hold it against `backward` on random inputs). A basic-index gradient may be
    returned as an `IndexedGrad`, which the walk writes into one buffer.
    """

    fast_backward = None

    @classmethod
    def apply(cls, *inputs, **params):
        first = inputs[0]
        try:  # `_device` is a Tensor's own slot: anything else (an array, a list) stops here
            device = first._device
            for t in inputs:
                if t._device != device:
                    raise DeviceError(
                        f"{cls.op_name()}: tensors on different devices: "
                        + ", ".join(f"{tuple(i.shape)} on {i.device}" for i in inputs)
                        + "; move them with .to(device) first"
                    )
        except AttributeError:
            raise _not_tensors(cls, inputs) from None
        fn = cls()
        fn.backend = first.backend
        fn.xp = fn.backend.xp
        fn.saved = None
        data = fn.forward(*[t.data for t in inputs], **params)
        requires_grad = _grad_enabled and any(t.requires_grad for t in inputs)
        if requires_grad and data.dtype.kind != "f" and str(data.dtype) != "bfloat16":
            requires_grad = False  # e.g. a cast to int: nothing to differentiate
        out = _make_tensor(data, getattr(fn, "out_device", device), requires_grad)
        if requires_grad:
            fn.inputs = inputs
            out._ctx = fn
            fn._output_ref = weakref.ref(out)
        return out

    @classmethod
    def op_name(cls) -> str:
        return cls.__name__.lower()

    @property
    def output(self):
        """The output Tensor (held weakly, so the graph has no reference cycle)."""
        return self._output_ref()

    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{type(self).__name__} defines no forward")

    def backward(self, grad):
        raise NotImplementedError(f"{type(self).__name__} defines no backward")

    def release(self) -> None:
        """Free what backward needed; a later backward through here fails loudly."""
        self.inputs = None
        self.saved = None


class IndexedGrad:
    """The gradient of `x[index]` for a basic index (slices, ints, None, ...): zeros of
    `shape` with `values` at `index`. Kept lazy, so that the pieces of a split (q, k and v
    of one projection) are written into one buffer instead of each into its own zeros."""

    __slots__ = ("xp", "index", "values", "shape")

    def __init__(self, xp, index, values, shape):
        self.xp, self.index, self.values, self.shape = xp, index, values, shape

    def dense(self):
        out = self.xp.zeros(self.shape, dtype=self.values.dtype)
        out[self.index] = self.values
        return out


def _not_tensors(op, inputs) -> DTypeError:
    described = ", ".join(
        "Tensor" if hasattr(x, "_device") else f"{type(x).__name__}{tuple(getattr(x, 'shape', ()))}" for x in inputs)
    return DTypeError(f"{op.op_name()}: expected Tensors, got ({described}); wrap arrays in Tensor(...) first")


def _make_tensor(data, device, requires_grad):
    global _make_tensor
    from .tensor import Tensor  # bound on first use: tensor.py imports this module
    _make_tensor = Tensor.wrap
    return _make_tensor(data, device, requires_grad)


def _topological_order(roots):
    """Tensors that need gradients, each after every tensor computed from it (outputs first).

    Iterative depth-first search: a 10,000-op chain must not hit the recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)  # post-order: after everything it depends on
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        ctx = tensor._ctx
        if ctx is None:
            continue
        if ctx.inputs is None:
            raise GraphError(
                f"backward through the graph a second time: the graph of {ctx.op_name()} was freed "
                "by the first backward; pass retain_graph=True to the first call if you need to "
                "backpropagate twice"
            )
        for parent in ctx.inputs:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


def _unbroadcast(grad, shape):
    """Sum a gradient back to the shape of the input it belongs to (undoes broadcasting)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    summed = grad.sum(axis=axes, keepdims=True) if axes else grad
    return summed.reshape(shape)


def run_backward(roots, root_grads, *, retain_graph=False, create_graph=False, inputs=None):
    """Propagate `root_grads` from `roots` back through the graph.

    With `inputs=None` the gradients accumulate into the `.grad` of leaves (and of
    tensors that called `retain_grad()`); otherwise the gradients of `inputs` are
    returned in order and no `.grad` is touched (that is `tinygrad_attn.grad`).

    With `create_graph` every op's Tensor-level `backward` runs with grad mode on, so
    the gradients are themselves differentiable. Otherwise the walk moves raw arrays:
    an op's `fast_backward` when it has one, else its `backward` with grad mode off.
    """
    if roots:
        roots[0].backend.on_backward()
    wanted = None if inputs is None else {id(t): i for i, t in enumerate(inputs)}
    found = [None] * (0 if inputs is None else len(inputs))
    order = _topological_order(roots)
    grads = _TensorGrads() if create_graph else _ArrayGrads()
    for root, g in zip(roots, root_grads):
        grads.add(root, g if create_graph else g.data)
    with _grad_mode(create_graph):
        for tensor in order:
            g = grads.pop(tensor)
            if g is None:
                continue
            if tensor._hooks:
                g = grads.run_hooks(tensor, g)
            if wanted is not None and id(tensor) in wanted:
                found[wanted[id(tensor)]] = grads.as_tensor(tensor, g)
            elif wanted is None and (tensor._ctx is None or tensor._retains_grad):
                tensor._store_grad(grads.as_tensor(tensor, g))
                for hook in tensor._post_hooks or ():
                    hook(tensor)
            ctx = tensor._ctx
            if ctx is None:
                continue
            for parent, pg in zip(ctx.inputs, grads.input_grads(ctx, tensor, g)):
                if pg is not None and parent.requires_grad:
                    grads.add(parent, pg)
            if not retain_graph:
                ctx.release()
    return found


class _TensorGrads:
    """Gradients as Tensors (create_graph): every sum is an op of the recorded graph."""

    def __init__(self):
        self.grads = {}

    def pop(self, tensor):
        return self.grads.pop(id(tensor), None)

    def add(self, tensor, g):
        if g.shape != tensor.shape:
            g = _unbroadcast(g, tensor.shape)
        previous = self.grads.get(id(tensor))
        # out of place: `g` may be the very tensor another input's gradient also is
        self.grads[id(tensor)] = g if previous is None else previous + g

    @staticmethod
    def input_grads(ctx, tensor, g):
        return ctx.backward(g)

    @staticmethod
    def as_tensor(tensor, g):
        return g if g.dtype == tensor.dtype else g.astype(tensor.dtype)  # a gradient has its tensor's dtype

    @staticmethod
    def run_hooks(tensor, g):
        for hook in tensor._hooks:
            replaced = hook(g)
            if replaced is not None:
                g = replaced
        return g


class _ArrayGrads:
    """Gradients as raw arrays (no graph of the gradient): each tensor's gradient is summed
    in place into one buffer the walk owns, and basic-index pieces are written into it."""

    def __init__(self):
        self.grads, self.owned = {}, set()

    def pop(self, tensor):
        g = self.grads.pop(id(tensor), None)
        return g.dense() if isinstance(g, IndexedGrad) else g

    def add(self, tensor, g):
        key = id(tensor)
        if not isinstance(g, IndexedGrad) and g.shape != tensor.shape:
            g = _unbroadcast(g, tensor.shape)
        previous = self.grads.get(key)
        if previous is None:
            self.grads[key] = g
            return
        if key in self.owned:
            buffer = previous
        elif isinstance(previous, IndexedGrad):
            buffer = previous.dense()
        elif isinstance(g, IndexedGrad):
            buffer = previous.copy()
        else:  # the first sum makes the buffer: previous and g may be shared with other tensors
            self.grads[key] = previous + g
            self.owned.add(key)
            return
        if isinstance(g, IndexedGrad):
            buffer[g.index] += g.values
        else:
            buffer += g
        self.grads[key] = buffer
        self.owned.add(key)

    @staticmethod
    def input_grads(ctx, tensor, g):
        if ctx.fast_backward is not None:
            return ctx.fast_backward(g)
        grads = ctx.backward(_make_tensor(g, tensor.device, False))
        return [None if pg is None else pg.data for pg in grads]

    @staticmethod
    def as_tensor(tensor, g):
        if g.dtype != tensor.dtype:
            g = g.astype(tensor.dtype)  # a gradient has its tensor's dtype
        return _make_tensor(g, tensor.device, False)

    @staticmethod
    def run_hooks(tensor, g):  # hooks see and return Tensors
        return _TensorGrads.run_hooks(tensor, _make_tensor(g, tensor.device, False)).data
