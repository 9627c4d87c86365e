"""Optimizers (SGD, Adam, AdamW), learning-rate schedules with warm-up, and gradient clipping.

    opt = optim.AdamW(optim.param_groups_for_weight_decay(model, 0.1), lr=3e-4)
    sched = optim.WarmupCosine(opt, warmup_steps=100, total_steps=2000)
    loss.backward(); optim.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()

Updates are written on the raw arrays (`p.data`, with the backend's `xp`, so the same
code runs on NumPy and CuPy), outside the graph, in place: a Parameter keeps its
identity and its memory. Gradient arrays are never written in place: the graph walk
may hand the same gradient array to two parameters. The parameters of a group are laid
out end to end in one array (flat_params.py), so that a step is a dozen passes over it
rather than a dozen calls per parameter; `p.data` and the state arrays are views into it.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import get_backend
from .errors import CheckpointError, ConfigError, NonFiniteError
from .flat_params import FlatParams, untied
from .tensor import Tensor, _is_float


# ---------------------------------------------------------------- base class

def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _same_kind(saved, mine) -> bool:
    """A saved hyperparameter can stand where `mine` is: a number for a number (finite), a flag for a
    flag, a list of numbers of the same length for a tuple (betas); other kinds are not checked."""
    if isinstance(mine, bool):
        return isinstance(saved, bool)
    if _is_number(mine):
        return _is_number(saved) and bool(np.isfinite(saved))
    if isinstance(mine, (tuple, list)):
        return (isinstance(saved, (tuple, list)) and len(saved) == len(mine)
                and all(_same_kind(s, m) for s, m in zip(saved, mine)))
    return True


class Optimizer:
    """Holds parameter groups and per-parameter state; subclasses define `_update`.

    `params` is an iterable of Parameters, or of dicts {"params": [...], **hyperparameters}
    (a group's hyperparameters override the defaults). `param_groups[i]["lr"]` can be
    set at any time (schedules do). Parameters whose grad is None are skipped.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}  # id(param) -> {"step": int, name: array, ...}
        self._flats: dict[tuple, FlatParams] = {}  # (group index, device, dtype) -> its parameters laid out flat
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        seen = set()
        for group in groups:
            self.add_param_group(group, seen)

    def add_param_group(self, group: dict, _seen=None) -> None:
        seen = _seen if _seen is not None else {id(p) for g in self.param_groups for p in g["params"]}
        if "params" not in group:
            raise ValueError(f"{type(self).__name__}: a parameter group needs a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: expected Tensors/Parameters, got {type(p).__name__}")
            if not _is_float(p.dtype):
                raise TypeError(f"{type(self).__name__}: cannot optimize a {p.dtype} tensor of shape {p.shape}")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} appears in more than one group")
            seen.add(id(p))
        full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": params}
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict) -> None:
        """Raise ConfigError for a hyperparameter out of range (subclasses name theirs)."""

    def _require(self, group: dict, **rules) -> None:
        # `not low <= v`, never `v < low`: NaN fails every comparison and must not slip through
        bad = [f"{name}={group[name]!r} (expected a finite number >= {low})" for name, low in rules.items()
               if isinstance(group[name], bool) or not isinstance(group[name], (int, float))
               or not math.isfinite(group[name]) or not low <= group[name]]
        if bad:
            raise ConfigError(f"{type(self).__name__}: invalid {', '.join(bad)}")

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        """Set every parameter's grad to None."""
        for p in self._params():
            p.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient.

        The parameters of a group that share a device and dtype are updated together, as one
        flat array (flat_params.py), when their steps agree; otherwise one by one."""
        for index, group in enumerate(self.param_groups):
            for params in _by_device_and_dtype(p for p in group["params"] if p.grad is not None):
                states = [self.state.setdefault(id(p), {"step": 0}) for p in params]
                for state in states:
                    state["step"] += 1
                xp = params[0].backend.xp
                flat = self._flat_params((index, params[0].device, params[0].dtype), params, states, xp)
                if flat is not None:
                    flat.update(self._update, params, states, group)
                    continue
                for p, state in zip(params, states):
                    self._update_one(p, state, group, xp)

    def _update_one(self, p, state, group, xp):
        if p.ndim:
            return self._update(p.data, p.grad.data, state, group, xp)
        # arithmetic on 0-d arrays gives NumPy scalars, which `*=` would not write back into the
        # state: the update runs on one-element views, and the state is kept 0-d
        one = {k: (v.reshape(1) if hasattr(v, "shape") else v) for k, v in state.items()}
        self._update(p.data.reshape(1), p.grad.data.reshape(1), one, group, xp)
        state.update({k: (v.reshape(()) if hasattr(v, "shape") else v) for k, v in one.items()})

    def _flat_params(self, key, params, states, xp):
        """The FlatParams of these parameters, laid out anew if needed; None where they are
        updated one by one (a single one, steps that differ, memory shared between them)."""
        if len(params) < 2 or len({state["step"] for state in states}) > 1:
            return None
        flat = self._flats.pop(key, None)
        if flat is not None and flat.holds(params, states):
            self._flats[key] = flat
            return flat
        names = {frozenset(k for k, v in state.items() if hasattr(v, "shape")) for state in states}
        if len(names) > 1 or untied(params)[1]:
            return None
        flat = self._flats[key] = FlatParams(params, states, xp)
        return flat

    def _update(self, data, g, state, group, xp):
        raise NotImplementedError(f"{type(self).__name__} must define _update (the in-place step of `data`)")

    # ---- state --------------------------------------------------------
    def state_dict(self) -> dict:
        """{"type", "state": {index: {name: NumPy array or number}}, "param_groups": [...]}.

        Parameters are numbered in group order, as in PyTorch; arrays are host NumPy copies.
        """
        state, groups, index = {}, [], 0
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                if id(p) in self.state:
                    state[index] = {k: (np.array(get_backend(p.device).to_host(v)) if hasattr(v, "shape") else v)
                                    for k, v in self.state[id(p)].items()}
                ids.append(index)
                index += 1
            groups.append({**{k: _plain(v) for k, v in group.items() if k != "params"}, "params": ids})
        return {"type": type(self).__name__, "state": state, "param_groups": groups}

    def check_state_dict(self, state_dict: dict) -> None:
        """Raise CheckpointError (a ValueError) saying what does not fit, without changing anything."""
        kind = state_dict.get("type", type(self).__name__)
        if kind != type(self).__name__:
            raise CheckpointError(f"optimizer state is from {kind}, this optimizer is {type(self).__name__}")
        groups = state_dict.get("param_groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                                   for g in groups):
            raise CheckpointError("optimizer state: param_groups must be a list of groups, each with a 'params' list")
        if len(groups) != len(self.param_groups):
            raise CheckpointError(f"optimizer state has {len(groups)} parameter groups, this optimizer has {len(self.param_groups)}")
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(mine["params"]):
                raise CheckpointError(f"optimizer group {i}: state has {len(saved['params'])} parameters, "
                                 f"this optimizer has {len(mine['params'])}")
            for name, value in saved.items():
                if name != "params" and name in mine and not _same_kind(value, mine[name]):
                    raise CheckpointError(f"optimizer group {i}: {name} is {value!r}, expected a value like "
                                          f"{_plain(mine[name])!r}")
        params = self._params()
        state = state_dict.get("state", {})
        if not isinstance(state, dict):
            raise CheckpointError(f"optimizer state: 'state' is a {type(state).__name__}, expected a dict")
        for key, entry in state.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise CheckpointError(f"optimizer state names parameter {key!r}; expected an index") from None
            if not 0 <= index < len(params):
                raise CheckpointError(f"optimizer state names parameter {index}, but there are {len(params)}")
            if not isinstance(entry, dict):
                raise CheckpointError(f"optimizer state {index} is a {type(entry).__name__}, expected a dict")
            for name, value in entry.items():
                if not hasattr(value, "shape") and not _is_number(value):
                    raise CheckpointError(f"optimizer state {index}.{name} is {value!r}, expected an array or a number")
                if hasattr(value, "shape") and tuple(value.shape) != tuple(params[index].shape):
                    raise CheckpointError(f"optimizer state {index}.{name} has shape {tuple(value.shape)}, "
                                     f"the parameter has shape {tuple(params[index].shape)}")

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and per-parameter state (arrays go to each parameter's device/dtype)."""
        self.check_state_dict(state_dict)
        params = self._params()
        new_state = {}
        for key, entry in state_dict.get("state", {}).items():
            p = params[int(key)]
            backend = p.backend
            new_state[id(p)] = {k: (backend.asarray(np.asarray(v)).astype(p.dtype) if hasattr(v, "shape") else v)
                                for k, v in entry.items()}
        for saved, mine in zip(state_dict["param_groups"], self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    mine[k] = tuple(v) if isinstance(v, list) else v
        self.state = new_state


def _by_device_and_dtype(params) -> list[list]:
    """The parameters split by (device, dtype), each list in the given order."""
    kinds = {}
    for p in params:
        kinds.setdefault((p.device, p.dtype), []).append(p)
    return list(kinds.values())


def _plain(v):
    """Hyperparameters as JSON-friendly values (tuples become lists)."""
    return list(v) if isinstance(v, tuple) else v


# ---------------------------------------------------------------- optimizers

class SGD(Optimizer):
    """p -= lr * d, where g = grad + weight_decay * p and, with momentum,
    buf = momentum * buf + g (buf = g at the first step), d = g + momentum * buf (Nesterov) or buf."""

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def _check_group(self, group):
        self._require(group, lr=0, momentum=0, weight_decay=0)
        if group["nesterov"] and group["momentum"] == 0:
            raise ConfigError("SGD: nesterov=True needs momentum > 0")

    def _update(self, data, g, state, group, xp):
        if group["weight_decay"]:
            g = g + group["weight_decay"] * data
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                buf += g
            g = g + mu * buf if group["nesterov"] else buf
        data -= group["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay is L2 added to the gradient."""

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_group(self, group):
        self._require(group, lr=0, eps=0, weight_decay=0)
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(0 <= b < 1 for b in betas)):
            raise ConfigError(f"{type(self).__name__}: invalid betas={betas!r} (expected two numbers in [0, 1))")
        group["betas"] = tuple(betas)

    def _update(self, data, g, state, group, xp):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd and self.decoupled:
            data *= 1 - lr * wd            # AdamW: shrink the weights, not the gradient
        elif wd:
            g = g + wd * data              # Adam: L2 penalty's gradient
        if "exp_avg" not in state:
            state["exp_avg"] = xp.zeros_like(data)
            state["exp_avg_sq"] = xp.zeros_like(data)
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        scratch = xp.multiply(g, 1 - b1, dtype=data.dtype)  # one temporary, reused by every line below
        m *= b1
        m += scratch                      # m = b1 m + (1 - b1) g
        xp.multiply(g, g, out=scratch)
        scratch *= 1 - b2
        v *= b2
        v += scratch                      # v = b2 v + (1 - b2) g^2
        # p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps), with sqrt(1 - b2^t) taken
        # out of the denominator: a pass fewer over the parameter
        root = math.sqrt(1 - b2 ** t)
        xp.sqrt(v, out=scratch)
        scratch += eps * root
        xp.divide(m, scratch, out=scratch)
        scratch *= lr * root / (1 - b1 ** t)
        data -= scratch


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * wd * p, then the Adam step."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def param_groups_for_weight_decay(model, weight_decay: float) -> list[dict]:
    """Two groups: the weights of Linear layers decay; everything else does not.

    Biases, LayerNorm weights, embeddings and position tables are left alone (decaying
    them pulls norms to 0 and rare tokens to nothing). A weight tied between an
    Embedding and a Linear (e.g. a GPT's output head) counts as an embedding.
    """
    from .nn import Embedding, Linear, PositionalEmbedding
    linear, embedding = set(), set()
    for _, m in model.named_modules():
        if isinstance(m, Linear):
            linear.add(id(m.weight))
        elif isinstance(m, (Embedding, PositionalEmbedding)):
            embedding.add(id(m.weight))
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if id(p) in linear and id(p) not in embedding else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------- schedules

class _WarmupSchedule:
    """Linear warm-up from 0 (step 0) to each group's base lr (step warmup_steps), then a decay
    to min_lr_ratio * base at total_steps, flat after. `step()` advances and sets the lrs."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1):
        if warmup_steps < 0 or total_steps < warmup_steps:
            raise ValueError(f"{type(self).__name__}: need 0 <= warmup_steps <= total_steps, got {warmup_steps}, {total_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"{type(self).__name__}: min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.optimizer = optimizer
        self.warmup_steps, self.total_steps, self.min_lr_ratio = warmup_steps, total_steps, min_lr_ratio
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def _decay(self, progress: float) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define _decay (the lr factor after warm-up)")

    def factor(self, step: int) -> float:
        """The multiplier of the base lr at `step`."""
        if step < self.warmup_steps:
            return step / self.warmup_steps
        if step >= self.total_steps:
            return self.min_lr_ratio
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * self._decay(progress)

    def get_lrs(self, step: int | None = None) -> list[float]:
        f = self.factor(self.last_step if step is None else step)
        return [base * f for base in self.base_lrs]

    def get_lr(self, step: int | None = None) -> float:
        """The lr of the first parameter group at `step` (default: the current step)."""
        return self.get_lrs(step)[0]

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def _apply(self):
        for group, lr in zip(self.optimizer.param_groups, self.get_lrs()):
            group["lr"] = lr

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "last_step": self.last_step, "base_lrs": list(self.base_lrs),
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps, "min_lr_ratio": self.min_lr_ratio}

    def check_state_dict(self, state) -> None:
        """CheckpointError naming the field of a saved schedule that does not fit this one."""
        if not isinstance(state, dict):
            raise CheckpointError(f"scheduler state is a {type(state).__name__}, expected a dict")
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise CheckpointError(f"scheduler state is from {state.get('type')!r}, this schedule is {type(self).__name__}")
        for name in ("last_step", "warmup_steps", "total_steps"):
            value = state.get(name)
            if not (_is_number(value) and float(value).is_integer() and value >= 0):
                raise CheckpointError(f"scheduler state: {name} is {value!r}, expected a whole number >= 0")
        ratio, lrs = state.get("min_lr_ratio"), state.get("base_lrs")
        if not _same_kind(ratio, 0.0):
            raise CheckpointError(f"scheduler state: min_lr_ratio is {ratio!r}, expected a number")
        if not _same_kind(lrs, list(self.base_lrs)):
            raise CheckpointError(f"scheduler state: base_lrs is {lrs!r}, expected {len(self.base_lrs)} numbers")

    def load_state_dict(self, state: dict) -> None:
        self.check_state_dict(state)
        self.last_step = int(state["last_step"])
        self.base_lrs = list(state["base_lrs"])
        self.warmup_steps, self.total_steps = int(state["warmup_steps"]), int(state["total_steps"])
        self.min_lr_ratio = float(state["min_lr_ratio"])
        self._apply()


class WarmupCosine(_WarmupSchedule):
    """Warm-up, then half a cosine from the base lr down to min_lr_ratio * base."""

    def _decay(self, progress):
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupLinear(_WarmupSchedule):
    """Warm-up, then a straight line from the base lr down to min_lr_ratio * base."""

    def _decay(self, progress):
        return 1.0 - progress


# ---------------------------------------------------------------- clipping

def clip_grad_norm_(params, max_norm: float, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so their global L2 norm is at most max_norm; return the norm before.

    Parameters without a gradient are ignored. The sum of squares is taken per
    device and moved to the host once. A NaN or inf norm scales every gradient to NaN,
    as in PyTorch (nothing passes unscaled), or raises NonFiniteError with
    `error_if_nonfinite=True`.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm >= 0:  # NaN too
        raise ConfigError(f"clip_grad_norm_: max_norm must be a number >= 0 (inf: only measure), got {max_norm!r}")
    params = [p for p in ([params] if isinstance(params, Tensor) else params) if p.grad is not None]
    if not params:
        return 0.0
    per_device = {}
    for p in params:
        g = p.grad.data
        if g.dtype.itemsize < 4:  # float16 squares overflow: accumulate in float32
            g = g.astype(np.float32)
        per_device[p.device] = per_device.get(p.device, 0.0) + (g * g).sum()
    total_sq = sum(float(s) for s in per_device.values())
    total = math.sqrt(total_sq)
    if not math.isfinite(total) and error_if_nonfinite:
        raise NonFiniteError(f"clip_grad_norm_: the gradients' total norm is {total} over {len(params)} parameters")
    if not total <= max_norm:  # NaN too: then the scale is NaN
        scale = max_norm / (total + 1e-6)
        for p in params:
            # a new array, not `*=`: the graph walk may share one gradient array between parameters
            p.grad = Tensor.wrap((p.grad.data * scale).astype(p.grad.dtype, copy=False), p.grad.device)
    return total
