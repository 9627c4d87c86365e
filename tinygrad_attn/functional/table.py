"""The op table: every public op registered once, with what checks and documents it.

An entry names the op's public function, a NumPy reference, the domain its tensor
inputs are drawn from, the tolerances, and whether it is twice differentiable. From
the table come the tests (tests/test_op_table.py: forward against NumPy, gradcheck,
second-order check, float32/float64 and strided/read-only inputs, on every device),
the `Tensor` methods, and the README's op list (checked by a test).

Adding an op: its `Function` in ops/ (if it is a primitive), its public function in
this package, and one `Op(...)` line below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import references as ref


@dataclass(frozen=True)
class Domain:
    """Where one tensor input is drawn from: uniform in [low, high], at least `min_abs` from 0;
    `grid` "on" or "off" draws from a 0.25 grid or 0.1 off it (for kinks and ties between
    two inputs), `unique` distinct values (for max/min/sort), `mixed` each value scaled by
    10^-2..10^2 (rows of very different magnitude: a shift by the global maximum fails there)."""
    low: float = -2.0
    high: float = 2.0
    min_abs: float = 0.0
    grid: str | None = None
    unique: bool = False
    mixed: bool = False

    def strategy(self, shape):
        from ..testing import arrays
        if self.mixed:
            from hypothesis import strategies as st
            from hypothesis.extra import numpy as hnp
            exponents = hnp.arrays(np.int64, shape, elements=st.integers(-2, 2))
            return st.tuples(arrays(shape, low=self.low, high=self.high), exponents).map(lambda p: p[0] * 10.0 ** p[1])
        if self.grid:
            from hypothesis import strategies as st
            from hypothesis.extra import numpy as hnp
            offset = 0.1 if self.grid == "off" else 0.0
            steps = st.integers(round(self.low * 4), round(self.high * 4))
            return hnp.arrays(np.int64, shape, elements=steps).map(lambda a: a * 0.25 + offset)
        return arrays(shape, low=self.low, high=self.high, min_abs=self.min_abs, unique=self.unique)

    def sample(self, rng, shape):
        """One array from the domain, without hypothesis (the layout checks)."""
        if self.grid:
            steps = rng.integers(round(self.low * 4), round(self.high * 4) + 1, size=shape)
            return steps * 0.25 + (0.1 if self.grid == "off" else 0.0)
        if self.mixed:
            return rng.uniform(self.low, self.high, size=shape) * 10.0 ** rng.integers(-2, 3, size=shape)
        if self.unique:
            return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.05 + self.low / 2
        a = rng.uniform(self.low, self.high, size=shape)
        return np.where(np.abs(a) < self.min_abs, np.copysign(self.min_abs, a) + a, a)


ANY = Domain()
MIXED = Domain(mixed=True)
POSITIVE = Domain(0.2, 3.0)


@dataclass(frozen=True)
class Op:
    """One registered case of a public op.

    fn(*tensors, **params) and ref(*arrays, **params) compute the same thing; `params`
    (draw, shapes) -> dict draws the non-tensor arguments (axes, masks, targets);
    `shapes` is "same", "broadcast", "matmul", "rows" (x, then vectors of x's last
    axis) or a function (draw, small) -> tuple of shapes. `api` is the public name when
    a case is one of several of the same function (gelu's two forms)."""
    name: str
    fn: Callable
    ref: Callable | None
    family: str
    inputs: tuple = (ANY,)
    shapes: object = "same"
    params: Callable | None = None
    rtol: float = 1e-9
    atol: float = 1e-12
    grad_tol: tuple = (1e-5, 1e-4)
    twice: bool = True
    differentiable: bool = True
    out_dtype: str | None = None  # a result that is not a float of the input's dtype ("bool", "int64")
    scalar: float | None = None  # a Python number the op also takes in place of its second input
    api: str | None = None
    method: bool = True  # also a Tensor method (added from here unless tensor.py defines it)
    layout_shapes: tuple | None = None  # input shapes for the layout checks (default: (3, 4) each)
    layout_params: dict = field(default_factory=dict)

    @property
    def public(self) -> str:
        return self.api or self.name


# ---------------------------------------------------------------- parameter draws

def _axis_param(draw, shapes, keepdims=True, none=True):
    from hypothesis import strategies as st
    nd = len(shapes[0])
    choices = [st.integers(-nd, nd - 1)] if nd else []
    if none or not nd:
        choices.append(st.none())
    out = {"axis": draw(st.one_of(*choices))}
    if keepdims:
        out["keepdims"] = draw(st.booleans())
    return out


def _last_axis_param(draw, shapes):
    from hypothesis import strategies as st
    nd = len(shapes[0])
    return {"axis": draw(st.integers(-nd, nd - 1))}


def _mask_param(name, allow_empty_rows=True):
    def draw_mask(draw, shapes):
        from ..testing import masks
        return {name: draw(masks(np.broadcast_shapes(*shapes), allow_empty_rows))}
    return draw_mask


def _targets_param(draw, shapes):
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
    classes = shapes[0][-1]
    targets = draw(hnp.arrays(np.int64, shapes[0][:-1], elements=st.sampled_from(list(range(classes)) + [-100])))
    return {"targets": targets, "label_smoothing": draw(st.sampled_from([0.0, 0.2])),
            "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


def _clip_param(draw, shapes):
    from hypothesis import strategies as st
    low, high = draw(st.sampled_from([(-0.5, 0.75), (None, 0.5), (-1.0, None), (0.0, 0.0)]))
    return {"min": low, "max": high}


def _var_shape(draw, small):
    from ..testing import shapes
    return (draw(shapes(min_dims=1, max_dims=3 if small else 4, min_side=2, max_side=3 if small else 5)),)


def _fixed(*shapes):
    return lambda draw, small: shapes


# ---------------------------------------------------------------- the table

def _table():
    from .. import functional as F  # the package is complete when the table is first read

    def constant(x, arr):
        from ..tensor import Tensor
        return Tensor(np.asarray(arr).astype(x.dtype), device=x.device)

    MASK34 = np.array([[True, False, True, True], [False, False, False, False], [True, True, False, True]])
    IDS = np.array([[0, 2, 2], [1, 0, 2]])
    SCATTER_IDS = np.array([[0, 1, 2], [2, 0, 1]])  # no target twice along either axis: valid for scatter too
    off, on = Domain(grid="off"), Domain(grid="on")
    E, A, R, L, S, N, AT = ("elementwise", "activation", "reduction", "linear algebra", "shape and indexing",
                            "neural network", "attention")
    return [
        # ---- arithmetic
        Op("add", F.add, np.add, E, (ANY, ANY), "broadcast", scalar=1.5, method=False),
        Op("sub", F.sub, np.subtract, E, (ANY, ANY), "broadcast", scalar=1.5, method=False),
        Op("mul", F.mul, np.multiply, E, (ANY, ANY), "broadcast", scalar=1.5, method=False),
        Op("div", F.div, np.divide, E, (ANY, Domain(min_abs=0.5)), "broadcast", scalar=1.5, method=False),
        Op("pow", F.pow, np.power, E, (Domain(0.5, 2.0), ANY), "broadcast", scalar=1.5),
        Op("pow_scalar", lambda x, p: x ** p, lambda x, p: np.power(x, p), E, (Domain(0.3, 2.0),), api="pow",
           params=lambda draw, shapes: {"p": draw(_sampled([2, 3, -1, 0.5, -0.5, 1.7, 0]))}, layout_params={"p": 0.5}),
        Op("maximum", F.maximum, np.maximum, E, (off, on), "broadcast", scalar=0.93),
        Op("minimum", F.minimum, np.minimum, E, (off, on), "broadcast", scalar=0.93),
        Op("neg", F.neg, np.negative, E, method=False),
        Op("exp", F.exp, np.exp, E),
        Op("log", F.log, np.log, E, (POSITIVE,)),
        Op("sqrt", F.sqrt, np.sqrt, E, (POSITIVE,)),
        Op("abs", F.abs, np.abs, E, (Domain(min_abs=1e-2),)),
        Op("erf", F.erf, ref.erf, E, method=False),
        Op("clip", F.clip, ref.clip, E, (off,), params=_clip_param, layout_params={"min": 0.61, "max": 1.17}),
        Op("where", lambda a, b, cond: F.where(cond, a, b), lambda a, b, cond: np.where(cond, a, b), E,
           (ANY, ANY), "broadcast", params=_mask_param("cond"), layout_params={"cond": MASK34}, method=False),
        Op("masked_fill", lambda x, mask: F.masked_fill(x, mask, -1.0), lambda x, mask: np.where(mask, -1.0, x), E,
           params=_mask_param("mask"), layout_params={"mask": MASK34}),
        # ---- activations
        # ---- more elementwise maths
        Op("sin", F.sin, np.sin, E),
        Op("cos", F.cos, np.cos, E),
        Op("tan", F.tan, np.tan, E, (Domain(-1.2, 1.2),)),
        Op("sinh", F.sinh, np.sinh, E),
        Op("cosh", F.cosh, np.cosh, E),
        Op("asin", F.asin, np.arcsin, E, (Domain(-0.9, 0.9),)),
        Op("acos", F.acos, np.arccos, E, (Domain(-0.9, 0.9),)),
        Op("atan", F.atan, np.arctan, E),
        Op("asinh", F.asinh, np.arcsinh, E, (Domain(-3.0, 3.0),)),
        Op("acosh", F.acosh, np.arccosh, E, (Domain(1.1, 4.0),)),
        Op("atanh", F.atanh, np.arctanh, E, (Domain(-0.9, 0.9),)),
        Op("copysign", F.copysign, np.copysign, E, (Domain(min_abs=0.05), Domain(min_abs=0.05)), "broadcast",
           scalar=-1.5),
        Op("floor", F.floor, np.floor, E, (off,)),
        Op("ceil", F.ceil, np.ceil, E, (off,)),
        Op("round", F.round, np.rint, E, (off,)),
        Op("trunc", F.trunc, np.trunc, E, (off,)),
        Op("sign", F.sign, np.sign, E, (Domain(min_abs=1e-2),)),
        Op("isnan", F.isnan, np.isnan, E, differentiable=False, twice=False, out_dtype="bool"),
        Op("isinf", F.isinf, np.isinf, E, differentiable=False, twice=False, out_dtype="bool"),
        Op("isfinite", F.isfinite, np.isfinite, E, differentiable=False, twice=False, out_dtype="bool"),
        Op("isclose", F.isclose, np.isclose, E, (on, on), "broadcast", params=_isclose_param, differentiable=False,
           twice=False, out_dtype="bool", layout_params={"rtol": 0.2, "atol": 0.3}),
        Op("log2", F.log2, np.log2, E, (POSITIVE,)),
        Op("log10", F.log10, np.log10, E, (POSITIVE,)),
        Op("exp2", F.exp2, np.exp2, E),
        Op("rsqrt", F.rsqrt, lambda x: 1 / np.sqrt(x), E, (POSITIVE,)),
        Op("logaddexp", F.logaddexp, np.logaddexp, E, (ANY, ANY), "broadcast", scalar=1.5),
        Op("lerp", F.lerp, lambda a, b, w: a + w * (b - a), E, (ANY, ANY, Domain(0.0, 1.0))),
        Op("floor_divide", F.floor_divide, lambda a, b: np.floor_divide(a, b), E, (off,), params=_divisor, layout_params={"b": 0.5}),
        Op("remainder", F.remainder, lambda a, b: np.remainder(a, b), E, (off,), params=_divisor, layout_params={"b": -0.5}),
        Op("fmod", F.fmod, lambda a, b: np.fmod(a, b), E, (off,), params=_divisor, layout_params={"b": 2.0}),
        Op("div_rounding", lambda a, b, rounding_mode: F.div(a, b, rounding_mode=rounding_mode), ref.div_rounded, E,
           (off,), params=_rounding_param, layout_params={"b": -0.5, "rounding_mode": "trunc"}, api="div",
           method=False),
        # ---- bitwise (integer and boolean inputs, made from the drawn floats)
        *_bitwise_entries(F, E),
        # ---- activations
        Op("tanh", F.tanh, np.tanh, A),
        Op("sigmoid", F.sigmoid, ref.sigmoid, A, (Domain(-6.0, 6.0),)),
        Op("relu", F.relu, ref.relu, A, (Domain(min_abs=1e-2),)),
        Op("gelu_tanh", lambda x: F.gelu(x, "tanh"), ref.gelu_tanh, A, (Domain(-4.0, 4.0),), api="gelu"),
        Op("gelu_exact", lambda x: F.gelu(x, "none"), ref.gelu_exact, A, (Domain(-4.0, 4.0),), api="gelu"),
        Op("silu", F.silu, lambda x: x * ref.sigmoid(x), A),
        Op("softplus", F.softplus, lambda x: np.logaddexp(0, x), A),
        Op("softplus_beta", lambda x, beta: F.softplus(x, beta=beta), lambda x, beta: np.logaddexp(0, beta * x) / beta,
           A, params=_keyword("beta", [0.5, 1.0, 2.0, 5.0]), layout_params={"beta": 2.0}, api="softplus"),
        Op("leaky_relu", F.leaky_relu, lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x), A,
           (Domain(min_abs=1e-2),), params=_keyword("negative_slope", [0.01, 0.0, 0.2, 1.5, -0.5])),
        Op("elu", F.elu, ref.elu, A, (Domain(min_abs=1e-2),), params=_keyword("alpha", [1.0, 0.5, 2.0])),
        Op("selu", F.selu, lambda x: ref.SELU_SCALE * ref.elu(x, ref.SELU_ALPHA), A, (Domain(min_abs=1e-2),)),
        Op("celu", lambda x: F.celu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x / 0.5)), A,
           (Domain(min_abs=1e-2),), api="celu"),
        Op("mish", F.mish, lambda x: x * np.tanh(np.logaddexp(0, x)), A),
        Op("hardtanh", F.hardtanh, lambda x: np.clip(x, -1, 1), A, (off,)),
        Op("relu6", F.relu6, lambda x: np.clip(x, 0, 6), A, (Domain(-2.0, 8.0, grid="off"),)),
        Op("hardsigmoid", F.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1), A, (Domain(-4.0, 4.0, grid="off"),)),
        Op("hardswish", F.hardswish, lambda x: x * np.clip(x / 6 + 0.5, 0, 1), A, (Domain(-4.0, 4.0, grid="off"),)),
        Op("logsigmoid", F.logsigmoid, lambda x: -np.logaddexp(0, -x), A),
        Op("softsign", F.softsign, lambda x: x / (1 + np.abs(x)), A, (Domain(min_abs=1e-2),)),
        Op("quick_gelu", F.quick_gelu, lambda x: x * ref.sigmoid(1.702 * x), A),
        # ---- reductions
        Op("sum", F.sum, np.sum, R, params=_axis_param, layout_params={"axis": 1}),
        Op("mean", F.mean, np.mean, R, params=_axis_param, layout_params={"axis": 0, "keepdims": True}),
        Op("max", F.max, np.max, R, (Domain(unique=True),), params=_axis_param, layout_params={"axis": 1}),
        Op("min", F.min, np.min, R, (Domain(unique=True),), params=_axis_param),
        Op("var", F.var, np.var, R, shapes=_var_shape,
           params=lambda draw, shapes: {**_axis_param(draw, shapes, none=True), "ddof": draw(_sampled([0, 1]))},
           layout_params={"axis": 1, "ddof": 1}),
        Op("logsumexp", F.logsumexp, ref.logsumexp, R, (MIXED,), params=_axis_param, layout_params={"axis": (0, 1)}),
        Op("prod", F.prod, np.prod, R, (Domain(-1.5, 1.5, grid="on"),), params=_axis_param,  # zeros included
           layout_params={"axis": 1}),
        Op("std", F.std, np.std, R, (Domain(unique=True),), shapes=_var_shape,  # distinct: std > 0
           params=lambda draw, shapes: {**_axis_param(draw, shapes), "ddof": draw(_sampled([0, 1]))},
           layout_params={"axis": 0, "ddof": 1}),
        Op("std_mean", lambda x, **p: F.stack(F.std_mean(x, **p)), lambda x, ddof, **p: np.stack([np.std(x, ddof=ddof, **p), np.mean(x, **p)]),
           R, (Domain(unique=True),), shapes=_var_shape, params=_ddof_param, layout_params={"axis": 1, "ddof": 1},
           method=False),
        Op("var_mean", lambda x, **p: F.stack(F.var_mean(x, **p)), lambda x, ddof, **p: np.stack([np.var(x, ddof=ddof, **p), np.mean(x, **p)]),
           R, shapes=_var_shape, params=_ddof_param, layout_params={"axis": 0, "ddof": 0}, method=False),
        Op("any", F.any, np.any, R, (on,), params=_axis_param, differentiable=False, twice=False, out_dtype="bool"),
        Op("all", F.all, np.all, R, (on,), params=_axis_param, differentiable=False, twice=False, out_dtype="bool"),
        Op("argmax", F.argmax, np.argmax, R, (Domain(unique=True),), params=_axis_param, differentiable=False,
           twice=False, out_dtype="int64"),
        Op("argmin", F.argmin, np.argmin, R, (Domain(unique=True),), params=_axis_param, differentiable=False,
           twice=False, out_dtype="int64"),
        Op("cumsum", F.cumsum, lambda x, axis: np.cumsum(x, axis), R, shapes=_rows, params=_last_axis_param,
           layout_params={"axis": 1}),
        Op("cumprod", F.cumprod, lambda x, axis: np.cumprod(x, axis), R, (Domain(-1.5, 1.5, grid="on"),),
           shapes=_rows, params=_last_axis_param, layout_params={"axis": 1}),
        Op("logcumsumexp", F.logcumsumexp, lambda x, axis: np.logaddexp.accumulate(x, axis), R, (MIXED,), shapes=_rows,
           params=_last_axis_param, layout_params={"axis": 1}),
        Op("cummax", lambda x, axis: F.cummax(x, axis)[0], lambda x, axis: np.maximum.accumulate(x, axis), R,
           (Domain(unique=True),), shapes=_rows, params=_last_axis_param, layout_params={"axis": 1}),
        Op("cummin", lambda x, axis: F.cummin(x, axis)[0], lambda x, axis: np.minimum.accumulate(x, axis), R,
           (Domain(unique=True),), shapes=_rows, params=_last_axis_param, layout_params={"axis": 0}),
        Op("cummax_indices", lambda x, axis: F.cummax(x, axis)[1], lambda x, axis: ref.running_extreme_index(x, axis, max),
           R, (on,), shapes=_rows, params=_last_axis_param, differentiable=False, twice=False, out_dtype="int64",
           api="cummax", layout_params={"axis": 1}),  # on the grid: ties, where the latest position wins
        Op("cummin_indices", lambda x, axis: F.cummin(x, axis)[1], lambda x, axis: ref.running_extreme_index(x, axis, min),
           R, (on,), shapes=_rows, params=_last_axis_param, differentiable=False, twice=False, out_dtype="int64",
           api="cummin", layout_params={"axis": 1}),
        Op("sort", lambda x, axis, descending: F.sort(x, axis, descending)[0], ref.sort, R, (Domain(unique=True),),
           shapes=_rows, params=_sort_param, layout_params={"axis": 1, "descending": True}),
        # on the grid, so ties are common: a stable sort keeps equal values in their order either way
        Op("argsort", F.argsort, ref.stable_argsort, R, (on,), shapes=_rows, params=_sort_param,
           differentiable=False, twice=False, out_dtype="int64"),
        Op("topk", lambda x, axis, k, largest, sorted: F.topk(x, k, axis, largest=largest, sorted=sorted)[0], ref.topk, R,
           (Domain(unique=True),), shapes=_rows, params=_topk_param,
           layout_params={"axis": 1, "k": 2, "largest": True, "sorted": True}),
        Op("topk_indices", lambda x, axis, k, largest, sorted: F.topk(x, k, axis, largest=largest, sorted=sorted)[1],
           ref.topk_indices, R, (on,), shapes=_rows, params=_topk_param, differentiable=False, twice=False,
           out_dtype="int64", layout_params={"axis": 1, "k": 2, "largest": False, "sorted": True}, api="topk"),
        Op("softmin", F.softmin, lambda x, axis: ref.softmax(-x, axis), R, shapes=_rows, params=_last_axis_param,
           layout_params={"axis": 0}),
        Op("normalize", F.normalize, ref.normalize, R, (Domain(min_abs=0.1),), shapes=_rows, params=_last_axis_param,
           layout_params={"axis": 1}),
        # ---- linear algebra
        Op("matmul", F.matmul, np.matmul, L, (ANY, ANY), "matmul", layout_shapes=((3, 4), (4, 2))),
        Op("linear", F.linear, ref.linear, L, (ANY, ANY, ANY), _linear_shapes, layout_shapes=((3, 4), (5, 4), (5,)),
           method=False),
        Op("einsum", lambda a, b: F.einsum("bij,bjk->bki", a, b), lambda a, b: np.einsum("bij,bjk->bki", a, b), L,
           (ANY, ANY), _fixed((2, 3, 4), (2, 4, 2)), layout_shapes=((2, 3, 4), (2, 4, 2)), method=False),
        # every kind of output permutation of one operand: identity, swaps, both 3-cycles, reductions (no '...': unsupported)
        Op("einsum_permute", lambda x, equation: F.einsum(equation, x), lambda x, equation: np.einsum(equation, x), L,
           shapes=_fixed((2, 3, 4)), params=_keyword("equation", EINSUM_ONE_OPERAND),
           layout_shapes=((2, 3, 4),), layout_params={"equation": "ijk->kij"}, api="einsum", method=False),
        Op("einsum_pair", lambda a, b, equation: F.einsum(equation, a, b),
           lambda a, b, equation: np.einsum(equation, a, b), L, (ANY, ANY), _fixed((2, 3, 4), (2, 4, 2)),
           params=_keyword("equation", EINSUM_TWO_OPERANDS), layout_shapes=((2, 3, 4), (2, 4, 2)),
           layout_params={"equation": "bij,bjk->kbi"}, api="einsum", method=False),
        Op("einsum_diagonal", lambda x: F.einsum("iij->ji", x), lambda x: np.einsum("iij->ji", x), L,
           shapes=_fixed((3, 3, 2)), layout_shapes=((3, 3, 2),), api="einsum", method=False),
        Op("einsum_three", lambda a, b, c: F.einsum("ijk,jl,lk->i", a, b, c),
           lambda a, b, c: np.einsum("ijk,jl,lk->i", a, b, c), L, (ANY, ANY, ANY), _fixed((2, 3, 4), (3, 2), (2, 4)),
           layout_shapes=((2, 3, 4), (3, 2), (2, 4)), api="einsum", method=False),
        # ---- shapes and indexing (fixed shapes: each case is one way to move the data)
        Op("reshape", lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6), S, shapes=_fixed((3, 4))),
        Op("flatten", F.flatten, lambda x: x.reshape(-1), S),
        Op("permute", lambda x: x.permute(1, 0), lambda x: x.transpose(1, 0), S, shapes=_fixed((3, 4))),
        Op("transpose", lambda x: x.transpose(0, 1), lambda x: np.swapaxes(x, 0, 1), S, shapes=_fixed((3, 4))),
        Op("swapaxes", lambda x: x.unsqueeze(0).swapaxes(0, 2), lambda x: np.swapaxes(x[None], 0, 2), S,
           shapes=_fixed((3, 4))),
        Op("expand", lambda x: x.unsqueeze(1).expand(3, 2, 4), lambda x: np.broadcast_to(x[:, None], (3, 2, 4)), S,
           shapes=_fixed((3, 4))),
        Op("squeeze", lambda x: x.reshape(3, 1, 4).squeeze(1), lambda x: x, S, shapes=_fixed((3, 4))),
        Op("unsqueeze", lambda x: x.unsqueeze(-1), lambda x: x[..., None], S),
        Op("cat", lambda x: F.cat([x, x * 2, x[:, :1]], axis=1), lambda x: np.concatenate([x, x * 2, x[:, :1]], 1), S,
           shapes=_fixed((3, 4)), method=False),
        Op("stack", lambda x: F.stack([x, x.exp()], axis=-1), lambda x: np.stack([x, np.exp(x)], -1), S, method=False),
        Op("split", lambda x: F.cat([p * (i + 1) for i, p in enumerate(x.split([1, 3], axis=1))], axis=1),
           lambda x: x * np.array([1, 2, 2, 2]), S, shapes=_fixed((3, 4))),
        Op("chunk", lambda x: F.cat([p * (i + 1) for i, p in enumerate(x.chunk(2, axis=0))], axis=0),
           lambda x: x * np.array([[1], [1], [2]]), S, shapes=_fixed((3, 4))),
        Op("getitem", lambda x: x[1:, ::-2], lambda x: x[1:, ::-2], S, shapes=_fixed((3, 4)), method=False),
        Op("getitem_repeats", lambda x: x[np.array([2, 0, 2, 2])], lambda x: x[[2, 0, 2, 2]], S,
           shapes=_fixed((3, 4)), api="getitem", method=False),
        Op("getitem_bool", lambda x: x[MASK34], lambda x: x[MASK34], S, shapes=_fixed((3, 4)), api="getitem", method=False),
        Op("gather", lambda x: x.gather(1, IDS.T), lambda x: np.take_along_axis(x, IDS.T, 1), S, shapes=_fixed((3, 4))),
        Op("embedding", lambda w: F.embedding(IDS, w), lambda w: w[IDS], S, shapes=_fixed((3, 4)), method=False),
        Op("tril", F.tril, lambda x, diagonal: np.tril(x, diagonal), S, shapes=_matrices, params=_diagonal_param),
        Op("triu", F.triu, lambda x, diagonal: np.triu(x, diagonal), S, shapes=_matrices, params=_diagonal_param),
        Op("flip", F.flip, lambda x, axis: np.flip(x, axis), S, params=lambda d, s: _axis_param(d, s, keepdims=False)),
        Op("pad", F.pad, ref.pad, S, shapes=_matrices, params=_pad_param, layout_params={"pad": (1, 0, 2, 1), "value": 1.5}),
        Op("pad_reflect", lambda x: F.pad(x, (2, -1, -1, 1), mode="reflect"), lambda x: ref.pad(x, (2, -1, -1, 1), "reflect"),
           S, shapes=_fixed((3, 4)), api="pad"),  # the layout checks of a mode that gathers
        Op("unfold", F.unfold, ref.unfold, S, params=_unfold_param, layout_params={"dimension": 1, "size": 2, "step": 1}),
        Op("roll", F.roll, lambda x, shifts, axis: np.roll(x, shifts, axis), S, params=_roll_param,
           layout_params={"shifts": 2, "axis": 1}),
        Op("repeat", lambda x, repeats: x.repeat(*repeats), lambda x, repeats: np.tile(x, repeats), S,
           params=_repeat_param, layout_params={"repeats": (2, 1, 3)}),
        Op("repeat_interleave", F.repeat_interleave, lambda x, repeats, axis: np.repeat(x, repeats, axis), S,
           params=_repeat_interleave_param, layout_params={"repeats": 2, "axis": 0}),
        Op("unflatten", lambda x: F.unflatten(x, 1, (2, -1)), lambda x: x.reshape(3, 2, 2), S, shapes=_fixed((3, 4))),
        Op("diagonal", F.diagonal, lambda x, offset: np.diagonal(x, offset).copy(), S, shapes=_fixed((3, 4)),
           params=lambda draw, s: {"offset": draw(_sampled([-2, -1, 0, 1, 3]))}, layout_params={"offset": 1}),
        Op("diag", lambda x: F.diag(x, 1), lambda x: np.diag(x, 1), S, shapes=_fixed((4,)), layout_shapes=((4,),)),
        Op("diag_of_matrix", lambda x: F.diag(x, -1), lambda x: np.diag(x, -1), S, shapes=_fixed((3, 4)), api="diag"),
        Op("scatter_add", lambda x, src: F.scatter_add(x, 0, SCATTER_IDS, src), ref.scatter_add, S, (ANY, ANY),
           _fixed((3, 4), (2, 3)), layout_shapes=((3, 4), (2, 3))),
        Op("scatter", lambda x, src: F.scatter(x, 1, SCATTER_IDS, src), ref.scatter, S, (ANY, ANY),
           _fixed((3, 4), (2, 3)), layout_shapes=((3, 4), (2, 3))),
        Op("masked_select", lambda x: F.masked_select(x, MASK34[0]), lambda x: x[:, MASK34[0]].reshape(-1), S,
           shapes=_fixed((3, 4))),
        Op("one_hot", lambda x: F.one_hot(x.long(), 4), lambda x: np.eye(4, dtype=np.int64)[x.astype(np.int64)], S,
           (Domain(0.0, 3.9),), differentiable=False, twice=False, out_dtype="int64", method=False),
        Op("nonzero", F.nonzero, np.argwhere, S, (on,), shapes=_fixed((3, 4)), differentiable=False, twice=False,
           out_dtype="int64"),
        # ---- neural-network functions
        Op("softmax", lambda x, mask=None: F.softmax(x, -1, mask=mask), ref.softmax, N, shapes=_rows,
           params=_maybe(_mask_param("mask")), layout_params={"mask": MASK34}),
        Op("log_softmax", F.log_softmax, ref.log_softmax, N, (MIXED,), shapes=_rows, params=_last_axis_param,
           layout_params={"axis": 0}),
        Op("cross_entropy", F.cross_entropy, ref.cross_entropy, N, shapes=_logits, params=_targets_param,
           layout_params={"targets": np.array([3, -100, 1]), "label_smoothing": 0.1}, method=False),
        Op("cross_entropy_soft", lambda x, p: F.cross_entropy(x, F.softmax(p, -1)), ref.cross_entropy_soft, N,
           (ANY, ANY), shapes=lambda draw, small: _rows(draw, small) * 2, api="cross_entropy", method=False),
        Op("nll_loss", F.nll_loss, ref.nll_loss, N, (Domain(-3.0, -0.1),), shapes=_logits, params=_nll_param,
           layout_params={"targets": np.array([3, -100, 1])}, method=False),
        Op("binary_cross_entropy", F.binary_cross_entropy, ref.binary_cross_entropy, N, (Domain(0.05, 0.95),) * 2,
           method=False),
        Op("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
           lambda x, y: ref.binary_cross_entropy(ref.sigmoid(x), y), N, (ANY, Domain(0.0, 1.0)), method=False),
        Op("mse_loss", F.mse_loss, lambda a, b: ((a - b) ** 2).mean(), N, (ANY, ANY), method=False),
        Op("l1_loss", F.l1_loss, lambda a, b: np.abs(a - b).mean(), N, (off, on), method=False),
        Op("smooth_l1_loss", F.smooth_l1_loss, ref.smooth_l1, N, (off, on), method=False,
           params=_reduction_and("beta", [1.0, 0.5, 2.0])),
        Op("huber_loss", F.huber_loss, lambda a, b, reduction, delta: delta * ref.smooth_l1(a, b, delta, reduction), N,
           (off, on), method=False, params=_reduction_and("delta", [1.0, 0.5, 2.0]),
           layout_params={"reduction": "mean", "delta": 0.5}),
        Op("layer_norm", lambda x, w, b: F.layer_norm(x, w, b, 1e-3), ref.layer_norm, N,
           (ANY, Domain(0.5, 2.0), ANY), "rows", rtol=1e-7, atol=1e-9, grad_tol=(1e-4, 1e-3),
           layout_shapes=((3, 4), (4,), (4,)), method=False),
        Op("dropout", lambda x: _reseeded_dropout(F, x), None, N, method=False),
        # ---- attention
        Op("scaled_dot_product_attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
           lambda q, k, v: ref.attention(q, k, v, causal=True), AT, (ANY, ANY, ANY), _attention_shapes,
           layout_shapes=((3, 4), (3, 4), (3, 2)), method=False),
        Op("sdpa_gqa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
           lambda q, k, v: ref.attention(q, np.repeat(k, 2, -3), np.repeat(v, 2, -3), causal=True), AT, (ANY, ANY, ANY),
           _fixed((1, 4, 3, 2), (1, 2, 3, 2), (1, 2, 3, 3)), layout_shapes=((1, 4, 3, 2), (1, 2, 3, 2), (1, 2, 3, 3)),
           api="scaled_dot_product_attention", method=False),
        Op("sdpa_float_mask", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=constant(q, ref.FLOAT_MASK)),
           lambda q, k, v: ref.attention(q, k, v, float_mask=ref.FLOAT_MASK), AT, (ANY, ANY, ANY),
           _fixed((3, 4), (3, 4), (3, 2)), api="scaled_dot_product_attention", method=False),
        Op("sdpa_learned_bias", lambda q, k, v, bias: F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=True),
           lambda q, k, v, bias: ref.attention(q, k, v, causal=True, float_mask=bias), AT, (ANY,) * 4,
           _fixed((2, 3, 4), (2, 3, 4), (2, 3, 2), (3, 3)), layout_shapes=((2, 3, 4), (2, 3, 4), (2, 3, 2), (1, 3)),
           api="scaled_dot_product_attention", method=False),
    ]


def _bitwise_entries(F, family):
    """Each bitwise op on int64 (from floats in [-40, 40], truncated) and, but the shifts, on bool (x > 0)."""
    ints, shift = Domain(-40.0, 40.0), Domain(0.0, 6.9)
    as_int = lambda a: a.astype(np.int64)  # noqa: E731
    out = []
    for name, numpy_op, bools in (("bitwise_and", np.bitwise_and, True), ("bitwise_or", np.bitwise_or, True),
                                  ("bitwise_xor", np.bitwise_xor, True), ("bitwise_left_shift", np.left_shift, False),
                                  ("bitwise_right_shift", np.right_shift, False)):
        fn = getattr(F, name)
        out.append(Op(name, lambda a, b, fn=fn: fn(a.long(), b.long()),
                      lambda a, b, op=numpy_op: op(as_int(a), as_int(b)), family, (ints, ints if bools else shift),
                      "broadcast", differentiable=False, twice=False, out_dtype="int64"))
        if bools:
            out.append(Op(name + "_bool", lambda a, b, fn=fn: fn(a > 0, b > 0), lambda a, b, op=numpy_op: op(a > 0, b > 0),
                          family, (ints, ints), "broadcast", differentiable=False, twice=False, out_dtype="bool", api=name))
    out.append(Op("bitwise_not", lambda a: F.bitwise_not(a.long()), lambda a: np.invert(as_int(a)), family, (ints,),
                  differentiable=False, twice=False, out_dtype="int64"))
    out.append(Op("bitwise_not_bool", lambda a: F.bitwise_not(a > 0), lambda a: ~(a > 0), family, (ints,),
                  differentiable=False, twice=False, out_dtype="bool", api="bitwise_not"))
    return out


def _isclose_param(draw, shapes):
    from hypothesis import strategies as st
    return {"rtol": draw(st.sampled_from([0.0, 1e-5, 0.2])), "atol": draw(st.sampled_from([0.0, 1e-8, 0.3])),
            "equal_nan": draw(st.booleans())}


def _ddof_param(draw, shapes):
    return {**_axis_param(draw, shapes), "ddof": draw(_sampled([0, 1]))}


def _unfold_param(draw, shapes):
    from hypothesis import strategies as st
    nd = len(shapes[0])
    dimension = draw(st.integers(-nd, nd - 1)) if nd else 0
    n = shapes[0][dimension] if nd else 1
    return {"dimension": dimension, "size": draw(st.integers(0, n)), "step": draw(st.integers(1, n + 1))}


def _divisor(draw, shapes):
    # grid inputs are 0.1 off multiples of 0.25: divided by these, never within 0.05 of a jump
    return {"b": draw(_sampled([0.5, -0.5, 2.0, 1.5]))}


def _matrices(draw, small):
    from ..testing import shapes
    return (draw(shapes(min_dims=2, max_dims=3, max_side=3 if small else 4)),)


def _diagonal_param(draw, shapes):
    return {"diagonal": draw(_sampled([-1, 0, 1, 2]))}


def _pad_param(draw, shapes):
    """Widths for 1 or 2 trailing axes: each side crops (negative) or pads, within what the mode allows."""
    from hypothesis import strategies as st
    shape = shapes[0]
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    widths = []
    for n in reversed(shape[-draw(st.integers(1, 2)):]):
        crop_lo = draw(st.integers(0, n - 1))
        crop_hi = draw(st.integers(0, n - 1 - crop_lo))
        kept = n - crop_lo - crop_hi
        cap = {"constant": 3, "reflect": min(3, kept - 1), "replicate": 3, "circular": min(3, kept)}[mode]
        widths += [-crop_lo if crop_lo else draw(st.integers(0, cap)), -crop_hi if crop_hi else draw(st.integers(0, cap))]
    params = {"pad": tuple(widths), "mode": mode}
    if mode == "constant":
        params["value"] = draw(_sampled([None, 0.0, 1.5]))
    return params


def _roll_param(draw, shapes):
    from hypothesis import strategies as st
    nd = len(shapes[0])
    if not nd:
        return {"shifts": draw(st.integers(-3, 3)), "axis": None}
    return {"shifts": draw(st.integers(-6, 6)), "axis": draw(st.one_of(st.none(), st.integers(-nd, nd - 1)))}


def _repeat_param(draw, shapes):
    from hypothesis import strategies as st
    nd = len(shapes[0])
    return {"repeats": tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd + 1)))}


def _repeat_interleave_param(draw, shapes):
    from hypothesis import strategies as st
    nd = len(shapes[0])
    axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1))) if nd else None
    return {"repeats": draw(st.integers(1, 3)), "axis": axis}


EINSUM_ONE_OPERAND = ["ijk->ijk", "ijk->ikj", "ijk->jik", "ijk->kji", "ijk->kij", "ijk->jki",
                      "ijk->ki", "ijk->kj", "ijk->j", "ijk->", "jik->kij"]
EINSUM_TWO_OPERANDS = ["bij,bjk->bik", "bij,bjk->bki", "bij,bjk->kbi", "bij,bjk->ikb", "bij,bjk->ib",
                       "bij,bjk->", "bij,bjk->bijk", "bij,bjk->jkbi"]


def _keyword(name, values):
    """A params draw of one keyword over its listed values."""
    return lambda draw, shapes: {name: draw(_sampled(values))}


def _reduction_and(name, values):
    return lambda draw, shapes: {"reduction": draw(_sampled(["mean", "sum", "none"])), name: draw(_sampled(values))}


def _rounding_param(draw, shapes):
    return {**_divisor(draw, shapes), "rounding_mode": draw(_sampled([None, "trunc", "floor"]))}


def _topk_param(draw, shapes):
    axis = _last_axis_param(draw, shapes)
    return {**axis, "k": draw(_sampled(list(range(0, shapes[0][axis["axis"]] + 1)))),
            "largest": draw(_sampled([True, False])), "sorted": draw(_sampled([True, False]))}


def _sort_param(draw, shapes):
    return {**_last_axis_param(draw, shapes), "descending": draw(_sampled([False, True]))}


def _nll_param(draw, shapes):
    params = _targets_param(draw, shapes)
    return {"targets": params["targets"], "reduction": params["reduction"]}


def _sampled(values):
    from hypothesis import strategies as st
    return st.sampled_from(values)


def _maybe(draw_params):
    def draw_or_not(draw, shapes):
        from hypothesis import strategies as st
        return draw_params(draw, shapes) if draw(st.booleans()) else {}
    return draw_or_not


def _rows(draw, small):
    from ..testing import shapes
    return (draw(shapes(min_dims=1, max_dims=3 if small else 4, max_side=3 if small else 5)),)


def _logits(draw, small):
    from hypothesis import strategies as st
    from ..testing import shapes
    lead = draw(shapes(max_dims=2, max_side=3))
    return (lead + (draw(st.integers(1, 4)),),)


def _linear_shapes(draw, small):
    from hypothesis import strategies as st
    from ..testing import shapes
    lead = draw(shapes(min_dims=1, max_dims=2, max_side=3))
    n_out = draw(st.integers(1, 4))
    return lead, (n_out, lead[-1]), (n_out,)


def _attention_shapes(draw, small):
    from hypothesis import strategies as st
    b, t, d, dv = (draw(st.integers(1, 3)) for _ in range(4))
    return (b, t, d), (b, t, d), (b, t, dv)


def _reseeded_dropout(F, x):
    from .. import manual_seed
    manual_seed(7)  # the same mask on every call, so finite differences see one function
    return F.dropout(x, 0.25)


_ENTRIES = None


def entries() -> list:
    """The registered ops, in README order."""
    global _ENTRIES
    if _ENTRIES is None:
        _ENTRIES = _table()
    return _ENTRIES


def public_names() -> list:
    """The public function of every entry, once each, in table order."""
    return list(dict.fromkeys(e.public for e in entries()))


def install_tensor_methods(tensor_class, functions) -> None:
    """`x.op(...)` for every entry marked `method`, unless tensor.py writes it by hand."""
    for e in entries():
        if e.method and not hasattr(tensor_class, e.public):
            setattr(tensor_class, e.public, _method(getattr(functions, e.public)))


def _method(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__, method.__doc__ = fn.__name__, fn.__doc__
    return method


def readme_list() -> str:
    """The README's op list, grouped by family (paste between the `<!-- op table -->` marks)."""
    families = {}
    for e in entries():
        families.setdefault(e.family, [])
        if e.public not in families[e.family]:
            families[e.family].append(e.public)
    return "\n".join(f"- {family}: " + ", ".join(f"`{n}`" for n in names) for family, names in families.items())
