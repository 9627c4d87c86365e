"""Parameters laid end to end in one array, so that an optimizer's update is a dozen passes
over one array instead of a dozen small calls per parameter (what PyTorch's `foreach`
optimizers buy with one C++ loop over the tensors).

A small model's step has ~50-80 parameters: Adam's update made ~12 NumPy calls on each,
1.1 ms of a 6.4 ms step at the tiny size (bench_cpu.py's case H), and on a GPU each call
is a kernel launch. A `FlatParams` owns one flat array per parameter group, device and
dtype; each parameter's `.data` becomes a view into it, and so does each per-parameter
state array (`opt.state[id(p)]["exp_avg"]`), so that state_dict, checkpoints and
everything that reads `p.data` see what they saw before.

The layout only holds while nobody replaces those arrays: `holds()` checks identity
before every step, and the optimizer lays the parameters out again when it fails
(`module.to(...)`, `load_state_dict`, `p.data = ...`). Parameters whose arrays share
memory (ties made with views rather than by sharing one Parameter) are never laid out:
one flat copy each would untie them.
"""
from __future__ import annotations

import itertools
import math


def byte_bounds(a) -> tuple[int, int]:
    """[first, last) byte addresses an array may touch (NumPy or CuPy)."""
    interface = getattr(a, "__array_interface__", None) or a.__cuda_array_interface__
    start = end = interface["data"][0]
    for n, stride in zip(a.shape, a.strides):
        if n == 0:
            return start, start
        reach = stride * (n - 1)
        start, end = (start + reach, end) if reach < 0 else (start, end + reach)
    return start, end + a.itemsize


def untied(params) -> tuple[list, list]:
    """(params whose data overlaps no other's, the rest)."""
    shared, furthest, owner = set(), -1, None
    for (start, end), i in sorted((byte_bounds(p.data), i) for i, p in enumerate(params)):
        if start < furthest:  # sorted by start: it overlaps the span reaching furthest so far
            shared.update((i, owner))
        if end > furthest:
            furthest, owner = end, i
    return ([p for i, p in enumerate(params) if i not in shared],
            [p for i, p in enumerate(params) if i in shared])


class FlatParams:
    """One flat array holding `params` end to end, their `.data` views into it, and the flat
    state arrays whose views are each parameter's state."""

    def __init__(self, params, states, xp):
        """`states`: each parameter's state, all with the same array names (the optimizer checks)."""
        self.xp = xp
        self.ids = tuple(id(p) for p in params)
        self.shapes = [p.shape for p in params]
        ends = list(itertools.accumulate(math.prod(s) for s in self.shapes))
        self.bounds = list(zip([0] + ends[:-1], ends))
        self.data = xp.concatenate([p.data.reshape(-1) for p in params])
        self.grad = xp.empty_like(self.data)
        self.data_views = self._views(self.data)
        for p, view in zip(params, self.data_views):
            p.data = view
        names = [k for k, v in states[0].items() if hasattr(v, "shape")]
        self.state = {name: xp.concatenate([xp.asarray(s[name]).reshape(-1) for s in states]).astype(
            self.data.dtype, copy=False) for name in names}  # the flat state, written by the optimizer's update
        self.share_state(states)

    def _views(self, flat):
        return [flat[a:b].reshape(shape) for (a, b), shape in zip(self.bounds, self.shapes)]

    def holds(self, params, states) -> bool:
        """Whether these are still the parameters laid out here, each `.data` and state array
        the very view handed out (identity: cheap enough to ask before every step)."""
        if tuple(id(p) for p in params) != self.ids:
            return False
        if any(p.data is not view for p, view in zip(params, self.data_views)):
            return False
        return all(s.get(name) is view for name, views in self.state_views.items() for s, view in zip(states, views))

    def gather_grads(self, params):
        """The parameters' gradients, end to end in one array (one copy, in one call)."""
        return self.xp.concatenate([p.grad.data.reshape(-1) for p in params], out=self.grad)

    def update(self, update, params, states, group) -> None:
        """update(data, grad, state, group, xp) run once on the flat arrays; `states` see the result."""
        state = dict(self.state, step=states[0]["step"])
        update(self.data, self.gather_grads(params), state, group, self.xp)
        arrays = {name: v for name, v in state.items() if hasattr(v, "shape")}
        if arrays.keys() != self.state.keys() or any(v is not self.state[k] for k, v in arrays.items()):
            self.state = arrays  # the first step made them: each parameter's state becomes views
            self.share_state(states)

    def share_state(self, states) -> None:
        """Each parameter's state arrays become views of the flat ones (after an update made new ones)."""
        self.state_views = {name: self._views(flat) for name, flat in self.state.items()}
        for name, views in self.state_views.items():
            for s, view in zip(states, views):
                s[name] = view
