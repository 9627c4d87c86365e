"""Shape arithmetic for every layer, in plain Python.

A training step asks for dozens of broadcasts and sizes of short tuples. NumPy's
`np.broadcast_shapes` builds arrays to answer (about 3 us a call here) and `np.prod` of a
list converts it to an array first (about 2 us); these take a fraction of that. This
module imports nothing of the package, so the backend may use it too.
"""
from __future__ import annotations

import math


def broadcast_shape(*shapes) -> tuple:
    """The shape that `shapes` broadcast to, by NumPy's rules; ValueError if they do not."""
    first = tuple(shapes[0])
    for s in shapes:
        if tuple(s) != first:
            break
    else:  # the common case: nothing to broadcast
        return first
    out = [1] * max(map(len, shapes))
    for s in shapes:
        offset = len(out) - len(s)
        for i, n in enumerate(s):
            if n != 1 and n != out[offset + i]:
                if out[offset + i] != 1:
                    raise ValueError(f"shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast together")
                out[offset + i] = n
    return tuple(out)


def size_of(shape) -> int:
    """The number of entries of an array of `shape` (1 for the empty shape)."""
    return math.prod(shape)
