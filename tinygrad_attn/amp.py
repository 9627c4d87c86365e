"""Mixed precision: LossScaler, static or dynamic loss scaling for float16 training.

float16 has a small range (its smallest normal is 6e-5), so small gradients flush to
zero on the way back. Multiplying the loss by a large scale S keeps them representable;
the gradients are divided by S again before the optimizer sees them. If a scaled
gradient overflowed (inf or nan), the step is skipped and a dynamic scaler halves S;
after `growth_interval` clean steps it doubles S again. Same recipe and names as
PyTorch's GradScaler:

    scaler = LossScaler()
    loss = F.cross_entropy(model(x.astype("float16")).float(), y)   # float32 master weights
    scaler.scale(loss).backward()
    scaler.step(optimizer)        # unscales, skips the step if a gradient is not finite
    scaler.update()               # adjusts the scale (dynamic) for the next step
    optimizer.zero_grad()

Checking for inf/nan costs one device-to-host sync per step (a single boolean).
"""
from __future__ import annotations

from .autograd import no_grad


class LossScaler:
    """Scale the loss, unscale the gradients, skip non-finite steps, adapt the scale.

    dynamic=False keeps `init_scale` fixed (static loss scaling; steps with inf/nan
    gradients are still skipped). The scale never falls below `min_scale`.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, dynamic: bool = True, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, min_scale: float = 1.0,
                 max_scale: float = 2.0 ** 24):
        if init_scale <= 0 or growth_factor <= 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise ValueError(f"LossScaler: need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
                             f"growth_interval >= 1; got {init_scale}, {growth_factor}, {backoff_factor}, {growth_interval}")
        self.scale_value = float(init_scale)
        self.dynamic = dynamic
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.clean_steps = 0      # finite steps since the scale last changed
        self.skipped_steps = 0    # total steps skipped for inf/nan
        self._found_inf = None    # set by unscale_, consumed by update
        self._unscaled = False

    # ---- the three calls of a training step -------------------------------
    def scale(self, loss):
        """loss * scale (backpropagate this instead of the loss)."""
        return loss * self.scale_value

    def unscale_(self, optimizer_or_params) -> bool:
        """Divide every gradient by the scale, in place of `.grad`; True if all are finite.

        Call it before gradient clipping so the clip sees true gradient norms; `step`
        calls it when you have not.
        """
        params = _params_of(optimizer_or_params)
        inv = 1.0 / self.scale_value
        bad = None
        with no_grad():
            for p in params:
                if p.grad is None:
                    continue
                # a new array, not in place: two parameters may share one gradient array
                p.grad = p.grad * inv
                xp = p.grad.backend.xp
                count = xp.sum(~xp.isfinite(p.grad.data))
                bad = count if bad is None else bad + count
        self._found_inf = bool(bad is not None and int(bad) > 0)  # the one host sync
        self._unscaled = True
        return not self._found_inf

    def step(self, optimizer, params=None) -> bool:
        """optimizer.step() unless a gradient is inf/nan; returns whether the step was taken."""
        if not self._unscaled:
            self.unscale_(params if params is not None else optimizer)
        if self._found_inf:
            self.skipped_steps += 1
            return False
        optimizer.step()
        return True

    def update(self) -> None:
        """Adapt the scale after a step: back off after an overflow, grow after a clean run."""
        found_inf, self._found_inf, self._unscaled = self._found_inf, None, False
        if not self.dynamic or found_inf is None:
            return
        if found_inf:
            self.scale_value = max(self.scale_value * self.backoff_factor, self.min_scale)
            self.clean_steps = 0
            return
        self.clean_steps += 1
        if self.clean_steps >= self.growth_interval:
            self.scale_value = min(self.scale_value * self.growth_factor, self.max_scale)
            self.clean_steps = 0

    def get_scale(self) -> float:
        return self.scale_value

    # ---- checkpointing ----------------------------------------------------
    def state_dict(self) -> dict:
        return {"scale": self.scale_value, "clean_steps": self.clean_steps, "skipped_steps": self.skipped_steps,
                "dynamic": self.dynamic, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval}

    def load_state_dict(self, state: dict) -> None:
        self.scale_value = float(state["scale"])
        self.clean_steps = int(state.get("clean_steps", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        for key in ("dynamic", "growth_factor", "backoff_factor", "growth_interval"):
            if key in state:
                setattr(self, key, type(getattr(self, key))(state[key]))


def _params_of(source):
    """The parameters of an optimizer (its param_groups) or an iterable of tensors."""
    groups = getattr(source, "param_groups", None)
    if groups is not None:
        return [p for g in groups for p in g["params"]]
    if hasattr(source, "parameters"):
        return list(source.parameters())
    return list(source)
