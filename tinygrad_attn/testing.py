"""Tools to prove gradients right: finite-difference checks and hypothesis strategies.

    from tinygrad_attn.testing import gradcheck
    gradcheck(lambda x, w: (x @ w).tanh(), x, w)

`gradcheck` compares the analytic gradient with central differences in float64. Small
inputs are checked element by element (the report names the worst element);
large ones along random directions, as Chainer's check_backward and JAX's
check_grads do, which costs two evaluations per direction whatever the size.
Hypothesis is imported only by the strategy functions, so the package works without it.
"""
from __future__ import annotations

import numpy as np

from .autograd import enable_grad, no_grad
from .gradients import grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def _as_float64_inputs(inputs):
    out = []
    for t in inputs:
        if isinstance(t, Tensor) and t.requires_grad:
            out.append(Tensor(t.data.astype(np.float64), requires_grad=True, device=t.device))
        else:
            out.append(t)
    return out


def _projection(out: Tensor, seed: int) -> np.ndarray:
    """A fixed random cotangent, so a non-scalar output is checked in every component."""
    return np.random.default_rng(seed).standard_normal(out.shape)


def _scalar(fn, inputs, cotangent):
    out = fn(*inputs)
    return (out * Tensor(cotangent, device=out.device)).sum()


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, max_elementwise=256, n_directions=4, seed=0):
    """Check d fn / d inputs against central differences, in float64. Returns True or raises.

    Inputs with requires_grad=True are checked (copied to float64); other arguments are
    passed through unchanged. A non-scalar output is contracted with a fixed random
    cotangent. Inputs with at most `max_elementwise` elements are checked element by
    element, larger ones along `n_directions` random directions.
    """
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    with no_grad():
        out = fn(*inputs)
    cotangent = _projection(out, seed)
    value = _scalar(fn, inputs, cotangent)
    # an output with no graph is constant in the inputs (e.g. the gradient of a linear op,
    # under gradgradcheck): its analytic gradient is zero, and the differences must agree
    analytic = (grad(value, [inputs[i] for i in checked], allow_unused=True) if value.requires_grad
                else [None] * len(checked))

    def f_value():
        with no_grad():
            return float(_scalar(fn, inputs, cotangent).item())

    rng = np.random.default_rng(seed + 1)
    for i, g in zip(checked, analytic):
        t = inputs[i]
        g = np.zeros(t.shape) if g is None else g.numpy()
        host = t.numpy().copy()

        def f_at(values):
            t.data = t.backend.asarray(values)
            return f_value()

        try:
            if t.size <= max_elementwise:
                numeric = np.zeros(t.shape)
                flat = host.reshape(-1)
                for j in range(flat.size):
                    plus, minus = flat.copy(), flat.copy()
                    plus[j] += eps
                    minus[j] -= eps
                    numeric.reshape(-1)[j] = (f_at(plus.reshape(t.shape)) - f_at(minus.reshape(t.shape))) / (2 * eps)
                _compare_elementwise(i, t.shape, g, numeric, atol, rtol)
            else:
                for d in range(n_directions):
                    direction = rng.standard_normal(t.shape)
                    numeric = (f_at(host + eps * direction) - f_at(host - eps * direction)) / (2 * eps)
                    exact = float(np.sum(g * direction))
                    if not abs(exact - numeric) <= atol * np.sqrt(t.size) + rtol * abs(numeric):
                        raise GradcheckError(
                            f"gradcheck: input {i} (shape {t.shape}): directional derivative {d} is {exact:.8g} "
                            f"analytically but {numeric:.8g} by finite differences")
        finally:
            t.data = t.backend.asarray(host)
    return True


def _compare_elementwise(i, shape, analytic, numeric, atol, rtol):
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"gradcheck: input {i}: gradient has shape {analytic.shape}, expected {numeric.shape}")
    err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if err.size and (np.max(err) > 0 or not np.all(np.isfinite(analytic))):
        worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))), shape)
        raise GradcheckError(
            f"gradcheck: input {i} (shape {shape}): worst element {tuple(int(w) for w in worst)}: analytic "
            f"{analytic[worst]:.8g} vs numeric {numeric[worst]:.8g} (|diff| {abs(analytic[worst] - numeric[worst]):.3g}, "
            f"atol {atol}, rtol {rtol}); {int(np.sum(err > 0))} of {err.size} elements off")


def gradgradcheck(fn, *inputs, seed=0, **kwargs):
    """Check second derivatives: gradcheck of (d fn / d inputs) . v, built with create_graph=True."""
    inputs = _as_float64_inputs(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    with no_grad():
        out = fn(*inputs)
    cotangent = _projection(out, seed)
    rng = np.random.default_rng(seed + 2)
    vs = {i: rng.standard_normal(inputs[i].shape) for i in checked}

    def first_derivative(*args):
        with enable_grad():  # gradcheck evaluates under no_grad; this inner grad needs a graph
            return _directional_first_derivative(args)

    def _directional_first_derivative(args):
        grads = grad(_scalar(fn, args, cotangent), [args[i] for i in checked], create_graph=True, allow_unused=True)
        total = None
        for i, g in zip(checked, grads):
            if g is None:
                continue
            term = (g * Tensor(vs[i], device=g.device)).sum()
            total = term if total is None else total + term
        return total

    return gradcheck(first_derivative, *inputs, seed=seed, **kwargs)


# ------------------------------------------------------------- hypothesis strategies

def shapes(min_dims=0, max_dims=4, min_side=1, max_side=5):
    """Array shapes, 0-d to `max_dims`-d."""
    from hypothesis.extra import numpy as hnp
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(min_dims=0, max_dims=4, max_side=4):
    """Pairs of shapes that broadcast together (size-1 axes and missing leading axes included)."""
    from hypothesis.extra import numpy as hnp
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims, max_side=max_side).map(
        lambda bs: tuple(bs.input_shapes))


def matmul_shapes(max_batch_dims=2, max_side=4):
    """Pairs of shapes valid for matmul: 1-D operands, 2-D, and broadcast batch dims."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    @st.composite
    def build(draw):
        m, k, n = (draw(st.integers(1, max_side)) for _ in range(3))
        batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_batch_dims, max_side=3))
        ba, bb = batch.input_shapes
        kind = draw(st.sampled_from(["mm", "vec_a", "vec_b", "dot"]))
        if kind == "dot":
            return (k,), (k,)
        if kind == "vec_a":
            return (k,), bb + (k, n)
        if kind == "vec_b":
            return ba + (m, k), (k,)
        return ba + (m, k), bb + (k, n)

    return build()


def arrays(shape, low=-2.0, high=2.0, dtype=np.float64, min_abs=0.0, unique=False):
    """Well-conditioned float arrays: bounded, optionally kept `min_abs` away from 0
    (for kinks such as relu and abs) and with distinct entries (for max/argmax ties)."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    if min_abs:
        elements = elements.filter(lambda v: abs(v) >= min_abs)
    if unique:
        # spread distinct values at least 1e-3 apart so finite differences never cross a tie
        return st.permutations(range(int(np.prod(shape)) if shape else 1)).map(
            lambda p: (np.asarray(p, dtype=dtype).reshape(shape) * 0.05 + low / 2))
    return hnp.arrays(dtype, shape, elements=elements)


def masks(shape, allow_empty_rows=True):
    """Boolean masks (True = keep) of `shape`; with `allow_empty_rows`, some last-axis rows may be all False."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    @st.composite
    def build(draw):
        m = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
        if not allow_empty_rows and m.ndim and m.shape[-1]:
            m[..., 0] |= ~m.any(axis=-1)
        elif allow_empty_rows and m.ndim >= 2 and m.size and draw(st.booleans()):
            m.reshape(-1, m.shape[-1])[0] = False  # make sure a fully masked row shows up often
        return m

    return build()


def module_gradcheck(module, fn, *inputs, **kwargs):
    """gradcheck of `fn(*inputs)` with respect to `module`'s parameters and the inputs.

    The module is switched to float64; gradcheck works on float64 copies of what it is
    given, so the copies are swapped into the module's parameter slots for each evaluation.
    """
    module.double()
    slots = [(m, name) for _, m in module.named_modules() for name, p in m._parameters.items() if p is not None]
    originals = [m._parameters[name] for m, name in slots]

    def wrapped(*ts):
        for (m, name), t in zip(slots, ts):
            m._parameters[name] = t
        try:
            return fn(*ts[len(slots):])
        finally:
            for (m, name), p in zip(slots, originals):
                m._parameters[name] = p

    return gradcheck(wrapped, *originals, *inputs, **kwargs)
