"""Shape ops: they move or copy values, so their backward moves the gradient back."""
from ..autograd import Function, IndexedGrad


class Reshape(Function):
    def forward(self, a, shape):
        return self.xp.reshape(a, shape)

    def backward(self, g):
        return (g.reshape(self.inputs[0].shape),)

    def fast_backward(self, g):
        # the same view on the array: a step reshapes ~50 times, and a Tensor op costs ~8 us more
        return (g.reshape(self.inputs[0].shape),)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return self.xp.transpose(a, axes)

    def _inverse(self):
        inverse = [0] * len(self.axes)
        for i, ax in enumerate(self.axes):
            inverse[ax] = i
        return inverse

    def backward(self, g):
        return (g.permute(*self._inverse()),)

    def fast_backward(self, g):
        return (self.xp.transpose(g, self._inverse()),)


class Expand(Function):
    """Broadcast to a larger shape (a view); the walk sums the gradient back."""

    def forward(self, a, shape):
        return self.xp.broadcast_to(a, shape)

    def backward(self, g):
        return (g,)


class Concatenate(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for size in self.sizes:
            grads.append(g[lead + (slice(start, start + size),)])
            start += size
        return tuple(grads)


def _has_array(index) -> bool:
    """Advanced (integer/boolean array) indexing can repeat elements; basic indexing cannot."""
    return any(hasattr(i, "shape") or isinstance(i, list) for i in index)


class GetItem(Function):
    """a[index] for basic and advanced indices; the gradient is scattered back (added at repeats)."""

    def forward(self, a, index):
        self.index = index
        return a[index]

    def backward(self, g):
        return (ScatterAdd.apply(g, index=self.index, shape=self.inputs[0].shape),)

    def fast_backward(self, g):
        shape = self.inputs[0].shape
        if _has_array(self.index):
            return (_scatter(self.backend, g, self.index, shape),)
        # a slice (a piece of split/chunk, a head, a row): the walk writes it into the one
        # gradient buffer of the input instead of a zero array per piece
        return (IndexedGrad(self.xp, self.index, g, shape),)


def _scatter(backend, g, index, shape):
    out = backend.xp.zeros(shape, dtype=g.dtype)
    backend.scatter_add(out, index, g)
    return out


class ScatterAdd(Function):
    """The adjoint of GetItem: zeros of `shape` with g added at `index` (repeats accumulate)."""

    def forward(self, g, index, shape):
        self.index = index
        if _has_array(index):
            return _scatter(self.backend, g, index, shape)
        return IndexedGrad(self.xp, index, g, shape).dense()

    def backward(self, gg):
        return (gg[self.index],)


class Unfold(Function):
    """The windows of `size` every `step` along `axis`, as a new last axis (PyTorch's
    Tensor.unfold): a strided view of the input, no copy. Its adjoint, Fold, adds each
    window's gradient back where the window came from (overlapping windows sum)."""

    def forward(self, a, axis, size, step):
        self.axis, self.size, self.step = axis, size, step
        n_windows = (a.shape[axis] - size) // step + 1
        shape = a.shape[:axis] + (n_windows,) + a.shape[axis + 1:] + (size,)
        strides = a.strides[:axis] + (a.strides[axis] * step,) + a.strides[axis + 1:] + (a.strides[axis],)
        return self.xp.lib.stride_tricks.as_strided(a, shape, strides)

    def backward(self, g):
        return (Fold.apply(g, axis=self.axis, size=self.size, step=self.step, length=self.inputs[0].shape[self.axis]),)


class Fold(Function):
    """The adjoint of Unfold: windows (..., n_windows, ..., size) summed into an axis of `length`."""

    def forward(self, g, axis, size, step, length):
        self.axis, self.size, self.step = axis, size, step
        n_windows = g.shape[axis]
        out = self.xp.zeros(g.shape[:axis] + (length,) + g.shape[axis + 1:-1], dtype=g.dtype)
        lead = (slice(None),) * axis
        for offset in range(size):  # the offset-th element of every window, in one strided write
            out[lead + (slice(offset, offset + step * (n_windows - 1) + 1, step),)] += g[..., offset]
        return out

    def backward(self, gg):
        return (Unfold.apply(gg, axis=self.axis, size=self.size, step=self.step),)
