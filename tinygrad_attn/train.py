"""The training loop, for any model: batches in, loss out; eval, checkpoints, resume, a NaN guard.

    trainer = Trainer(model, optimizer, batch_fn=lambda rng: lm_batches(ids, 32, 128, rng),
                      loss_fn=lambda model, batch: model.loss(*batch), steps=1000,
                      schedule=sched, eval_fn=my_eval, eval_every=100, out_dir="runs/gpt")
    history = trainer.fit()              # or trainer.fit(resume=True) after an interruption

Each step: draw a batch from `batch_fn(rng)` (rng is the trainer's NumPy generator),
forward + backward, clip the gradient norm, advance the schedule, update. Every
`eval_every` steps and at the end: `eval_fn(model)` in eval mode without gradients, then
a checkpoint in `out_dir/checkpoint` (atomic; see tinygrad_attn.checkpoint).

What a checkpoint holds, so that `fit(resume=True)` continues bit for bit on the CPU:
weights, optimizer moments, schedule position, the batch generator's state, the
backend generator's state (dropout), and the step. `metrics.jsonl` gets one JSON line
per step: step, loss, lr, grad_norm, time, tokens_per_s, and eval_loss/eval_ppl at evals.

Non-finite guard: a NaN/inf loss or gradient norm stops training with NonFiniteError
before the update, and before any save, so the last checkpoint stays the last good one.

The run directory (see tinygrad_attn.run_dir): `fit` holds its lock (a second trainer
gets RunInUseError naming the first) and, on every start, cuts `metrics.jsonl` back to
the step it starts from, so the log always matches the checkpoint. Ctrl-C finishes the
current step, saves it and raises KeyboardInterrupt; a second Ctrl-C quits at once.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import checkpoint
from .autograd import no_grad
from .backend import get_backend, set_num_threads
from .backend.cpu_threads import default_threads
from .errors import CheckpointError, NonFiniteError
from .optim import clip_grad_norm_
from .files import open_append
from .run_dir import METRICS_FILE, hold_run, keep_metrics_through, read_metrics  # noqa: F401 (re-exported)

CHECKPOINT_DIR = "checkpoint"


def _rng_state(generator):
    """A JSON-able snapshot of a NumPy Generator's state (None where the generator has none, e.g. CuPy)."""
    try:
        state = generator.bit_generator.state
        json.dumps(state)
        return state
    except (AttributeError, TypeError, ValueError):
        return None


def _trainer_position(state, path) -> tuple[int, float]:
    """(step, elapsed) of a checkpoint's 'trainer' record, each checked for its type."""
    if not isinstance(state, dict):
        raise CheckpointError(f"resume: checkpoint {path}: its 'trainer' entry is a {type(state).__name__}, not a dict")
    step, elapsed = state.get("step"), state.get("elapsed", 0.0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"resume: checkpoint {path}: trainer step is {step!r}, expected a whole number >= 0")
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed):
        raise CheckpointError(f"resume: checkpoint {path}: trainer elapsed is {elapsed!r}, expected seconds")
    return step, float(elapsed)


def _set_rng_state(generator, state, path=None, name="rng") -> None:
    if state is None:
        return
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise CheckpointError(f"resume: checkpoint {path}: {name} is not a random generator state ({e})") from None


def _default_loss(model, batch):
    return model.loss(*batch)


def _batch_tokens(batch) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(getattr(first, "size", 0))


class Trainer:
    """Trains `model` with `optimizer` for `steps` steps (see the module docstring).

    batch_fn(rng) -> batch; loss_fn(model, batch) -> scalar Tensor (default model.loss(*batch));
    eval_fn(model) -> float (held-out loss) or dict of floats with "eval_loss".
    `extra` (JSON-able) is saved in every checkpoint, e.g. the model config.
    `progress`: a tqdm bar (default: only when stderr is a terminal); without the bar a
    line is printed every `log_every` steps. `print_fn` receives those lines.
    `resume_command` is how the user continues after an interruption (the CLI sets its command line).
    `parallel`: a `distributed.DataParallel` when several processes train this model
    (batch_fn then gives this rank's shard); only its rank 0 writes, prints and evaluates.
    """

    def __init__(self, model, optimizer, batch_fn: Callable, loss_fn: Callable | None = None, *, steps: int,
                 schedule=None, eval_fn: Callable | None = None, eval_every: int = 100, out_dir=None,
                 grad_clip: float | None = 1.0, seed: int = 0, extra: dict | None = None,
                 log_every: int | None = None, progress: bool | None = None, desc: str = "train",
                 print_fn: Callable = print, parallel=None):
        if steps < 1 or eval_every < 1:
            raise ValueError(f"Trainer: steps and eval_every must be >= 1, got {steps} and {eval_every}")
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.batch_fn, self.loss_fn = batch_fn, loss_fn or _default_loss
        self.eval_fn, self.eval_every, self.steps = eval_fn, eval_every, steps
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.grad_clip = grad_clip
        self.rng = np.random.default_rng(seed)
        self.extra = dict(extra or {})
        self.log_every = log_every or max(1, steps // 10)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.desc, self.print = desc, print_fn
        self.parallel = parallel
        self.is_main = parallel is None or parallel.is_main
        if not self.is_main:
            self.progress, self.print = False, lambda *args: None
        self.step = 0
        self.elapsed = 0.0               # seconds of training, summed over resumed runs
        self.last_checkpoint_step = None
        self.history: list[dict] = []
        self.resume_command = "fit(resume=True)"
        self._stop_requested = False
        self.params = [p for p in model.parameters() if p.requires_grad]

    # ---------------------------------------------------------------- paths and state

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_DIR

    def _backend_rng(self):
        return get_backend(self.model.device).rng

    def _trainer_state(self) -> dict:
        return {"step": self.step, "elapsed": self.elapsed, "batch_rng": _rng_state(self.rng),
                "backend_rng": _rng_state(self._backend_rng()), "device": self.model.device}

    def save(self) -> None:
        if self.checkpoint_path is None:
            return
        if self.is_main:   # every rank holds the same weights and state: one writer is enough
            checkpoint.save(self.checkpoint_path, self.model, self.optimizer,
                            extra={**self.extra, "trainer": self._trainer_state()}, scheduler=self.schedule)
        self.last_checkpoint_step = self.step

    def _resume(self) -> None:
        path = self.checkpoint_path
        if path is None or not checkpoint.exists(path):
            raise CheckpointError(f"resume: no checkpoint to resume from at {path}; train without resume first")
        extra = checkpoint.load(path, self.model, self.optimizer, scheduler=self.schedule)
        state = extra.get("trainer")
        if state is None:
            raise CheckpointError(f"resume: checkpoint {path} was not written by a Trainer (no 'trainer' entry)")
        self.step, self.elapsed = _trainer_position(state, path)
        self.last_checkpoint_step = self.step
        _set_rng_state(self.rng, state.get("batch_rng"), path, "batch_rng")
        if state.get("device") == self.model.device:
            _set_rng_state(self._backend_rng(), state.get("backend_rng"), path, "backend_rng")
        if self.schedule is not None and getattr(self.schedule, "total_steps", self.steps) != self.steps:
            self.schedule.total_steps = self.steps   # asked for more (or fewer) steps than the first run

    # ---------------------------------------------------------------- one step, one eval

    def _fail(self, what: str, value: float, loss: float) -> None:
        where = (f"the last good checkpoint is {self.checkpoint_path} (step {self.last_checkpoint_step})"
                 if self.last_checkpoint_step is not None else "no checkpoint was written yet")
        raise NonFiniteError(
            f"step {self.step + 1}: the {what} is {value} (loss {loss}); the update was skipped and nothing "
            f"was saved; {where}. Try a lower learning rate or stronger gradient clipping.")

    def train_step(self) -> dict:
        """One update; returns its metrics (loss, lr, grad_norm)."""
        batch = self.batch_fn(self.rng)
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model, batch)
        loss_value = float(loss.item())
        if self.parallel is not None:
            loss_value = self.parallel.average_loss(loss_value)   # all ranks agree, also on NaN
        if not math.isfinite(loss_value):
            self._fail("loss", loss_value, loss_value)
        loss.backward()
        if self.parallel is not None:
            self.parallel.reduce_gradients()
        grad_norm = clip_grad_norm_(self.params, self.grad_clip if self.grad_clip else math.inf)
        if not math.isfinite(grad_norm):
            self._fail("gradient norm", grad_norm, loss_value)
        if self.schedule is not None:
            self.schedule.step()   # the lr for this update: warm-up starts above 0
        self.optimizer.step()
        self.step += 1
        return {"loss": loss_value, "lr": float(self.optimizer.param_groups[0]["lr"]), "grad_norm": float(grad_norm),
                "tokens": _batch_tokens(batch) * (self.parallel.world_size if self.parallel else 1)}

    def evaluate(self) -> dict:
        """Run eval_fn in eval mode without gradients; {"eval_loss", "eval_ppl", ...}."""
        if self.eval_fn is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                result = self.eval_fn(self.model)
        finally:
            self.model.train(was_training)
        if self.parallel is not None:
            result = self.parallel.broadcast(result)   # rank 0's numbers, and its NaN verdict, everywhere
        result = {"eval_loss": float(result)} if not isinstance(result, dict) else dict(result)
        loss = result.get("eval_loss")
        if loss is not None:
            if not math.isfinite(loss):
                self._fail("held-out loss", loss, loss)
            result.setdefault("eval_ppl", math.exp(min(loss, 50.0)))
        return result

    # ---------------------------------------------------------------- the loop

    def fit(self, resume: bool = False, until: int | None = None) -> list[dict]:
        """Train to `steps` (or stop early after step `until`, saving there); return this call's step records."""
        # BLAS threads for the CPU's products; ranks on one machine share its cores
        set_num_threads(None if self.parallel is None else max(1, default_threads() // self.parallel.world_size))
        if self.parallel is None:
            return self._held_fit(resume, until)
        with self.parallel.abort_on_error(collective=(NonFiniteError,)):
            return self._held_fit(resume, until)

    def _held_fit(self, resume: bool, until: int | None) -> list[dict]:
        if self.out_dir is None or not self.is_main:  # rank 0 alone holds (and writes) the run directory
            return self._fit(resume, until)
        with hold_run(self.out_dir):
            return self._fit(resume, until)

    def _on_sigint(self, signum, frame) -> None:
        """First Ctrl-C: stop after the current step (and save it); the next one interrupts at once."""
        self._stop_requested = True
        signal.signal(signal.SIGINT, self._previous_sigint)
        self.print("\nCtrl-C: stopping after this step and saving it (press Ctrl-C again to quit at once)")

    def _fit(self, resume: bool, until: int | None) -> list[dict]:
        if resume:
            self._resume()
        if self.parallel is not None:
            self.parallel.start(self._backend_rng(), reseeded=resume)
        stop = self.steps if until is None else min(until, self.steps)
        if resume and self.step >= stop:
            self.print(f"already trained to step {self.step} of {self.steps}; nothing to do "
                       f"(ask for more steps to train longer)")
            return []
        metrics = None
        if self.out_dir is not None and self.is_main:
            keep_metrics_through(self.out_dir, self.step)   # lines past the starting step belong to a lost run
            metrics = open_append(self.out_dir / METRICS_FILE, "metrics log")
        catch_sigint = threading.current_thread() is threading.main_thread()
        if catch_sigint:
            self._stop_requested = False
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.steps, initial=self.step, desc=self.desc, dynamic_ncols=True, file=sys.stderr)
        say = bar.write if bar is not None else self.print
        window_tokens, window_time, window_losses = 0, 0.0, []
        first, stopped_cleanly = len(self.history), False
        self.model.train()
        try:
            while self.step < stop:
                t0 = time.perf_counter()
                record = self.train_step()
                dt = time.perf_counter() - t0
                self.elapsed += dt
                tokens = record.pop("tokens")
                window_tokens, window_time = window_tokens + tokens, window_time + dt
                window_losses.append(record["loss"])
                record = {"step": self.step, **record, "time": round(self.elapsed, 3),
                          "tokens_per_s": round(tokens / dt, 1) if dt > 0 else None}
                boundary = self.step % self.eval_every == 0 or self.step == stop
                if boundary:
                    record.update(self.evaluate())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.1e}",
                                    tok_s=f"{window_tokens / max(window_time, 1e-9):,.0f}", refresh=False)
                if self.step % self.log_every == 0 or boundary:
                    line = (f"step {self.step:>5}/{self.steps}  loss {np.mean(window_losses):.4f}  "
                            f"lr {record['lr']:.2e}  {window_tokens / max(window_time, 1e-9):,.0f} tok/s  "
                            f"{self.elapsed:.0f}s")
                    if "eval_loss" in record:
                        line += f"  eval_loss {record['eval_loss']:.4f}  ppl {record['eval_ppl']:.2f}"
                    if bar is None or "eval_loss" in record:
                        say(line)
                    window_tokens, window_time, window_losses = 0, 0.0, []
                self.history.append(record)
                if metrics is not None:
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                if boundary or self._stop_requested:
                    self.save()
                if self._stop_requested:
                    saved = (f"saved a checkpoint at step {self.step}" if self.checkpoint_path is not None
                             else "nothing was saved (no out_dir)")
                    say(f"interrupted at step {self.step}; {saved}; resume with: {self.resume_command}")
                    stopped_cleanly = True
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not stopped_cleanly:           # a second Ctrl-C, or one this thread could not catch
                where = (f"the last checkpoint is step {self.last_checkpoint_step}; resume with: {self.resume_command}"
                         if self.last_checkpoint_step is not None else "no checkpoint was written")
                say(f"interrupted at step {self.step}; {where}")
            raise
        finally:
            if catch_sigint and signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._previous_sigint)
            if bar is not None:
                bar.close()
            if metrics is not None:
                metrics.close()
        return self.history[first:]


def train(model, optimizer, batch_fn, loss_fn=None, *, steps: int, resume: bool = False, **kwargs) -> list[dict]:
    """Build a Trainer and fit it: `train(model, opt, batch_fn, steps=500, out_dir="runs/x")`."""
    return Trainer(model, optimizer, batch_fn, loss_fn, steps=steps, **kwargs).fit(resume=resume)
