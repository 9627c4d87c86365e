"""The backend contract: everything the engine asks of a device, as one abstract class.

A backend gives
  - `xp`, its array namespace (NumPy 2 and CuPy follow the Array API closely, so op
    code is written once against `xp`), and `device`, the name a Tensor reports;
  - data movement: `asarray`, `to_host`, `synchronize`;
  - a seeded generator: `seed`, `random_normal`, `random_uniform`, `random_integers`;
  - what the Array API lacks: `scatter_add` (embedding gradients), `erf` (exact GELU),
    and sums along rows and columns, which each library does fastest its own way;
  - the named kernels of the fused ops. Each op's forward calls one, and its fast
    backward (see autograd.Function) another; the op's Tensor-level backward is the
    mathematical truth they are tested against. `array_kernels.ArrayKernels` writes
    them once against `xp`; a backend overrides one where it has something faster
    (the CUDA kernels of cupy_kernels.py).

Library code reads an array's values on the host (a range check, a shortcut for an
all-True mask) only where `checks_values()` says so: always when the values live in
host memory, on a GPU only in debug mode (debug_checks.py), since there each read
stops the host until the GPU has caught up.

Both backends subclass `Backend`, so a missing method is an error at construction,
not a surprise in the middle of a training step.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from .debug_checks import debug_checks_enabled


class Backend(ABC):
    device: str  # the name a Tensor reports: "cpu", "cuda"
    xp: object   # the array namespace
    collectives: str  # how data-parallel ranks average its arrays: "mpi" (host memory) or "nccl" (GPUs)
    # True when arrays live in host memory, so that reading a value costs no synchronisation;
    # a device backend sets False (the safe default checks everything)
    values_on_host: bool = True

    def on_backward(self) -> None:
        """Called as each backward walk begins: once per training step in a training loop, where a
        backend may time its steps and tune itself (the CPU backend chooses OpenBLAS's spin)."""

    def checks_values(self) -> bool:
        """Whether library code may read array values to check them (ids in range, ...):
        free on host arrays; on a device only with debug checks on (set_debug_checks)."""
        return self.values_on_host or debug_checks_enabled()

    # data movement; random numbers
    @abstractmethod
    def asarray(self, data, dtype=None): """`data` (list, NumPy or CuPy array) as this backend's array."""
    @abstractmethod
    def to_host(self, array): """The array as a NumPy array."""
    @abstractmethod
    def synchronize(self) -> None: """Wait until queued work is done (for timing)."""
    @abstractmethod
    def seed(self, seed: int) -> None: ...
    @abstractmethod
    def random_normal(self, shape, dtype): ...
    @abstractmethod
    def random_uniform(self, shape, dtype): ...
    @abstractmethod
    def random_integers(self, low, high, shape): ...

    # what the Array API lacks
    @abstractmethod
    def scatter_add(self, target, index, values) -> None: """target[index] += values, repeats accumulating."""
    @abstractmethod
    def erf(self, x): ...
    @abstractmethod
    def row_max(self, a): """a.max(axis=-1, keepdims=True), NaN entries may be skipped (a softmax's shift)."""
    @abstractmethod
    def row_sum(self, a): """a.sum(axis=-1, keepdims=True)."""
    @abstractmethod
    def row_dot(self, a, b): """(a * b).sum(axis=-1, keepdims=True)."""
    @abstractmethod
    def column_sum(self, a): """a.sum(axis=0) of a matrix (n, d): a bias gradient."""
    @abstractmethod
    def column_dot(self, a, b): """(a * b).sum(axis=0) of matrices (n, d): a scale gradient."""
    @abstractmethod
    def matmul(self, a, b): """a @ b with NumPy's rules (every product of the engine goes through here)."""

    # named kernels: array_kernels.py gives each one's formula
    @abstractmethod
    def softmax(self, x, axis, mask): """Masked entries (mask False) 0; a row with none kept all 0."""
    @abstractmethod
    def softmax_backward(self, y, g, axis): ...
    @abstractmethod
    def log_softmax(self, x, axis): ...
    @abstractmethod
    def log_softmax_backward(self, y, g, axis): ...
    @abstractmethod
    def cross_entropy(self, logits, targets, ignore_index, label_smoothing): """(loss per position, saved)."""
    @abstractmethod
    def cross_entropy_backward(self, logits, targets, saved, grad_scale, ignore_index, label_smoothing): ...
    @abstractmethod
    def layer_norm(self, x, weight, bias, eps): """(y, saved)."""
    @abstractmethod
    def layer_norm_backward(self, x, weight, g, saved, needs): """(dx, dweight, dbias), None where not needed."""
    @abstractmethod
    def gelu_tanh(self, x): """(y, saved)."""
    @abstractmethod
    def gelu_tanh_backward(self, x, saved, g): ...
    @abstractmethod
    def attention(self, q, k, v, mask, scale, keep): """(out, saved): out = (softmax(scale q k^T + mask) keep) v."""
    @abstractmethod
    def attention_backward(self, q, k, v, saved, keep, g, scale, scores_grad=False):
        """(dq, dk, dv, ds): dq, dk, dv laid out like q, k, v; ds the scores' gradient (that of an
        added mask), or None where `scores_grad` is False and producing it would cost memory."""
