"""Module and Parameter: the containers that register, move, save and load a model's tensors.

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 8)          # a sub-module: registered by assignment
            self.scale = nn.Parameter(tga.ones(8))  # a parameter: registered by assignment
            self.register_buffer("mask", tga.ones(8))  # state that is not trained

        def forward(self, x):
            return self.fc(x) * self.scale

What is registered: Parameters and Modules assigned as attributes, the items of
`nn.ModuleList` / `nn.ModuleDict`, and buffers given to `register_buffer`. A plain
Python list, tuple or dict of modules would hide their parameters from the optimizer
and the checkpoint, so assigning one raises a TypeError that points to ModuleList/ModuleDict.
Names are dotted paths (`blocks.0.attn.qkv.weight`), as in PyTorch.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from ..autograd import no_grad
from ..backend import get_backend, normalize_device
from ..errors import CheckpointError, DTypeError
from ..tensor import Tensor, _is_float

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable: float, requires_grad=True.

    The data is copied (a Parameter never aliases the array it was made from); integer
    data becomes float32. Optimizers update `param.data` in place, so the identity of
    a Parameter is stable for the life of the model (`Module.to` keeps it too).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if not isinstance(data, Tensor):
            data = Tensor(data)
        backend = data.backend
        dtype = data.dtype if _is_float(data.dtype) else np.float32
        super().__init__(backend.xp.array(data.data, dtype=dtype, copy=True), device=data.device)
        self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _move_in_place(t: Tensor, device: str) -> None:
    """Put t's values (and its grad) on `device`, keeping the Tensor object itself."""
    if t.device == device:
        return
    target = get_backend(device)  # a backend's asarray takes arrays of any backend
    t.data = target.asarray(t.data)
    t._device = target.device
    if t.grad is not None:
        t.grad = Tensor.wrap(target.asarray(t.grad.data), target.device)


def _as_array_like(value, like: Tensor, name: str):
    """`value` (Tensor or array, any device) as an array of like's shape, dtype and device."""
    data = value.data if isinstance(value, Tensor) else value
    arr = like.backend.asarray(data)  # from any backend
    if tuple(arr.shape) != tuple(like.shape):
        raise CheckpointError(f"load_state_dict: {name} has shape {tuple(arr.shape)}, the model expects {tuple(like.shape)}")
    return arr.astype(like.dtype, copy=False)


def _is_module_container(value) -> bool:
    """A non-empty plain list/tuple/dict made only of Modules or Parameters (a registration trap)."""
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        return False
    return bool(items) and all(isinstance(v, (Module, Parameter)) for v in items)


class Module:
    """Base class of layers and models: registers parameters, buffers and sub-modules.

    Subclasses call `super().__init__()` first, assign their parts as attributes and
    define `forward`; calling the module calls `forward`.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ----------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name} is a Parameter; assign an nn.Parameter (or None), "
                                f"got {type(value).__name__}")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name} is a sub-module; assign a Module (or None), "
                                f"got {type(value).__name__}")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}.{name} is a buffer; assign a Tensor (or None)")
            buffers[name] = value
        else:
            if _is_module_container(value):
                raise TypeError(
                    f"{type(self).__name__}.{name}: a plain {type(value).__name__} of modules/parameters is not "
                    "registered (the optimizer and state_dict would never see it); use nn.ModuleList or nn.ModuleDict")
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # only called when normal lookup fails: the registered parts live in the three dicts
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be an nn.Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register non-trained state (e.g. a fixed table): moved by `to`, saved when persistent."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name} must be a Tensor or None, got {type(tensor).__name__}")
        if "." in name or not name:
            raise KeyError(f"register_buffer: invalid buffer name {name!r}")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def register_module(self, name: str, module) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"register_module: {name} must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    add_module = register_module

    # ---- traversal -------------------------------------------------------
    def named_modules(self, prefix: str = "", memo=None):
        """(dotted name, module) for self and every sub-module, each once (shared ones too)."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in modules:
            for name, t in getattr(module, registry).items():
                if t is None or (remove_duplicate and id(t) in seen):
                    continue
                seen.add(id(t))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """(dotted name, Parameter); a parameter shared by two modules (tied weights) comes once."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The sub-module at a dotted path, e.g. model.get_submodule("blocks.0.attn")."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no sub-module {part!r} (path {target!r})")
            module = module._modules[part]
        return module

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalar parameters (shared parameters counted once)."""
        return int(sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only))

    # ---- modes and bulk operations ---------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze (True) every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (sets `.grad` to None, the cheapest reset)."""
        for p in self.parameters():
            p.grad = None

    def apply(self, fn) -> "Module":
        """Call fn(module) on every sub-module (children first), then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _tensors(self):
        seen = set()
        for _, m in self.named_modules():
            for registry in (m._parameters, m._buffers):
                for t in registry.values():
                    if t is not None and id(t) not in seen:
                        seen.add(id(t))
                        yield t

    def to(self, device) -> "Module":
        """Move every parameter and buffer to `device` IN PLACE and return self.

        The Parameter objects stay the same, so an optimizer built before the move
        still updates the model's parameters.
        """
        device = normalize_device(device)
        for t in self._tensors():
            _move_in_place(t, device)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype) -> "Module":
        """Cast floating-point parameters and buffers to `dtype` in place (e.g. float64 for gradcheck)."""
        for t in self._tensors():
            if _is_float(t.dtype) and t.dtype != dtype:
                t.data = t.data.astype(dtype)
                t.grad = None
        return self

    def double(self):
        return self.astype(np.float64)

    def float(self):
        return self.astype(np.float32)

    @property
    def device(self) -> str:
        """The device of the first parameter (or buffer); "cpu" for a module without tensors."""
        for t in self._tensors():
            return t.device
        return "cpu"

    # ---- state -----------------------------------------------------------
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Tensor]":
        """name -> Tensor for every parameter and persistent buffer.

        The tensors are detached and share memory with the model (copy them to keep a
        snapshot). Tied parameters appear under each of their names, as in PyTorch.
        """
        out = OrderedDict()
        for mod_prefix, m in self.named_modules(prefix):
            dot = f"{mod_prefix}." if mod_prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[dot + name] = p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[dot + name] = b.detach()
        return out

    def _state_targets(self):
        """name -> the live Tensor that state_dict's entry of that name reads."""
        out = OrderedDict()
        for mod_prefix, m in self.named_modules():
            dot = f"{mod_prefix}." if mod_prefix else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[dot + name] = p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[dot + name] = b
        return out

    def check_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """The problems load_state_dict would raise for, without loading anything.

        Raises CheckpointError listing missing, unexpected and mis-shaped names.
        """
        targets = self._state_targets()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        misshaped = []
        for k, t in targets.items():
            if k in state:
                shape = tuple(getattr(state[k], "shape", np.shape(state[k])))
                if shape != tuple(t.shape):
                    misshaped.append(f"{k}: got {shape}, expected {tuple(t.shape)}")
        problems = []
        if strict and missing:
            problems.append(f"missing {len(missing)}: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected)}")
        if misshaped:
            problems.append(f"mis-shaped {len(misshaped)}: {'; '.join(misshaped)}")
        if problems:
            raise CheckpointError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems)
                                  + " (the model was not changed)")
        return IncompatibleKeys(missing, unexpected)

    def load_state_dict(self, state, strict: bool = True) -> IncompatibleKeys:
        """Copy values from `state` (name -> Tensor or array) into the model in place.

        Everything is checked before anything is copied: with strict=True a missing or
        unexpected name is an error; a wrong shape always is. Values are converted to
        each parameter's device and dtype. Returns (missing_keys, unexpected_keys).
        """
        result = self.check_state_dict(state, strict)
        targets = self._state_targets()
        arrays = {k: _as_array_like(state[k], t, k) for k, t in targets.items() if k in state}
        with no_grad():
            for k, arr in arrays.items():
                targets[k].data[...] = arr
        return result

    # ---- calling and printing --------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} defines no forward()")

    def __call__(self, *args, **kwargs):
        try:
            return self.forward(*args, **kwargs)
        except AttributeError as error:  # e.g. a NumPy array where a Tensor belongs: say so, not 'no .backend'
            culprits = [a for a in (*args, *kwargs.values()) if a is error.obj and not isinstance(a, Tensor)]
            if not culprits:
                raise
            culprit = culprits[0]
            shape = tuple(getattr(culprit, "shape", ()))
            raise DTypeError(f"{type(self).__name__}: expected a Tensor, got {type(culprit).__name__}"
                             f"{' of shape ' + str(shape) if shape else ''}; wrap it in Tensor(...) first") from None

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in repr (its configuration)."""
        return ""

    def __repr__(self):
        count = f"{self.num_parameters():,} params"
        lines = []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        extra = self.extra_repr()
        if not lines:
            n = self.num_parameters()
            return f"{type(self).__name__}({extra})" + (f"  # {count}" if n else "")
        head = f"{type(self).__name__}({extra}" if extra else f"{type(self).__name__}("
        return head + f"  # {count}\n" + "\n".join(lines) + "\n)"
