"""No hidden device->host transfer in a training step.

On a GPU, every read of an array's value on the host (`int(ids.max())`, `bool(mask.all())`,
`a[bool_mask]`, `.item()`, `to_host`) stops the host until the GPU has run everything
queued. A training step must make none besides the ones the user asks for (`loss.item()`).

On the CPU this is proven with a stand-in device: a backend whose arrays are a NumPy
subclass that raises on every conversion to a host value while a guard is on, so that
re-adding `if xp.any(mask)` to an op fails here. Its named kernels are the shared
array_kernels.py code that the CuPy backend also runs; only the few methods a real GPU
backend implements its own way (generator, scatter-add, erf) run with the guard lifted.
On CUDA the same steps run under `cupyx.allow_synchronize(False)`, which makes CuPy
raise on any synchronisation.
"""
from __future__ import annotations

import contextlib
import functools
import traceback

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import backend as backend_module
from tinygrad_attn.backend.array_kernels import ArrayKernels
from tinygrad_attn.backend.contract import Backend
from tinygrad_attn.backend.numpy_backend import NumpyBackend
from tinygrad_attn.models import GPT, GPTConfig, MaskedLM, MLMConfig


class HostRead(AssertionError):
    """A value of a device array was read on the host inside a guarded region."""


_GUARD = {"on": False, "raise": True, "found": []}


def _host_read(what):
    if _GUARD["on"]:
        where = "".join(traceback.format_stack(limit=7)[:-2])
        _GUARD["found"].append(f"{what}\n{where}")
        if _GUARD["raise"]:
            raise HostRead(f"device->host read inside a training step: {what}\n{where}")


@contextlib.contextmanager
def guarded(raise_at_once=True):
    """Forbid host reads of DeviceArrays; with raise_at_once=False, record each one (all of a
    step are listed) and let the step go on."""
    _GUARD.update(on=True, found=[])
    _GUARD["raise"] = raise_at_once
    try:
        yield _GUARD["found"]
    finally:
        _GUARD["on"] = False


@contextlib.contextmanager
def unguarded():
    """For what a GPU backend does on the device its own way (its generator, its scatter-add)."""
    before, _GUARD["on"] = _GUARD["on"], False
    try:
        yield
    finally:
        _GUARD["on"] = before


def _is_bool_index(key):
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, np.ndarray) and k.dtype == np.bool_ and k.ndim > 0 for k in keys)


_DATA_DEPENDENT = {np.nonzero, np.flatnonzero, np.argwhere, np.unique, np.count_nonzero, np.compress,
                   np.extract, np.array_equal, np.allclose}


class DeviceArray(np.ndarray):
    """A NumPy array that behaves like a GPU array towards the host: its values stay put."""

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # reductions give 0-d arrays, as CuPy's do, not NumPy scalars that would hide a read
        return np.ndarray.__array_wrap__(self, array, context, False)

    def __array_function__(self, func, types, args, kwargs):
        if func in _DATA_DEPENDENT:
            _host_read(f"np.{func.__name__} (its result's size depends on the values)")
        return super().__array_function__(func, types, args, kwargs)

    def __bool__(self):
        _host_read(f"bool() of an array of shape {self.shape}")
        return bool(np.asarray(self))

    def __int__(self):
        _host_read(f"int() of an array of shape {self.shape}")
        return int(np.asarray(self))

    def __float__(self):
        _host_read(f"float() of an array of shape {self.shape}")
        return float(np.asarray(self))

    def __index__(self):
        _host_read(f"an array of shape {self.shape} used as a Python index")
        return np.asarray(self).__index__()

    def item(self, *args):
        _host_read(f".item() of an array of shape {self.shape}")
        return np.asarray(self).item(*args)

    def tolist(self):
        _host_read(f".tolist() of an array of shape {self.shape}")
        return np.asarray(self).tolist()

    def nonzero(self):
        _host_read("nonzero() (its result's size depends on the values)")
        return np.asarray(self).nonzero()

    def __getitem__(self, key):
        if _is_bool_index(key):
            _host_read("indexing with a boolean array (the result's size depends on the values)")
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        if _is_bool_index(key):
            _host_read("assigning through a boolean array index")
        super().__setitem__(key, value)


def _device(x):
    if isinstance(x, np.ndarray) and not isinstance(x, DeviceArray):
        return x.view(DeviceArray)
    if isinstance(x, tuple):
        return tuple(_device(v) for v in x)
    if isinstance(x, list):
        return [_device(v) for v in x]
    return x


class _DeviceNamespace:
    """numpy, with every function's arrays turned into DeviceArrays (ufuncs keep the subclass)."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if callable(attr) and not isinstance(attr, (type, np.ufunc)):
            @functools.wraps(attr)
            def call(*args, **kwargs):
                if attr in _DATA_DEPENDENT:
                    _host_read(f"xp.{name} (its result's size depends on the values)")
                return _device(attr(*args, **kwargs))
            return call
        return attr


class HostReadForbiddingBackend(ArrayKernels, Backend):
    """A stand-in GPU: the shared array kernels on DeviceArrays; values never read on the host."""
    device = "cpu"  # tensors keep their usual device name; the backend object is swapped in
    collectives = "mpi"
    values_on_host = False  # as the CuPy backend: checks only in debug mode

    def __init__(self):
        self.xp = _DeviceNamespace()
        self.host = NumpyBackend()

    def asarray(self, data, dtype=None):
        return _device(np.asarray(np.asarray(data) if isinstance(data, DeviceArray) else data, dtype=dtype))

    def to_host(self, array):
        _host_read(f"to_host of an array of shape {getattr(array, 'shape', None)}")
        return np.asarray(array).view(np.ndarray).copy()

    def synchronize(self):
        pass

    def seed(self, seed):
        self.host.seed(seed)

    def random_normal(self, shape, dtype):
        with unguarded():
            return _device(self.host.random_normal(shape, dtype))

    def random_uniform(self, shape, dtype):
        with unguarded():
            return _device(self.host.random_uniform(shape, dtype))

    def random_integers(self, low, high, shape):
        with unguarded():
            return _device(self.host.random_integers(low, high, shape))

    def scatter_add(self, target, index, values):
        with unguarded():  # a kernel on the GPU (CupyFused.scatter_add_rows)
            np.add.at(target, index, values)

    def erf(self, x):
        with unguarded():
            return _device(self.host.erf(np.asarray(x).view(np.ndarray)))

    # the reductions the CuPy backend writes as array expressions
    def row_max(self, a):
        return a.max(axis=-1, keepdims=True)

    def row_sum(self, a):
        return a.sum(axis=-1, keepdims=True)

    def row_dot(self, a, b):
        return (a * b).sum(axis=-1, keepdims=True)

    def column_sum(self, a):
        return a.sum(axis=0)

    def column_dot(self, a, b):
        return (a * b).sum(axis=0)


@pytest.fixture
def stand_in_gpu(monkeypatch):
    backend = HostReadForbiddingBackend()
    monkeypatch.setitem(backend_module._BACKENDS, "cpu", backend)
    tga.manual_seed(0)
    return backend


def _gpt_step(device):
    model = GPT(GPTConfig(vocab_size=40, seq_len=12, d_model=32, n_heads=4, n_layers=2, dropout=0.1)).to(device)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, (2, 12))  # a batch comes from the host, as the trainer's do
    targets = rng.integers(0, 40, (2, 12))
    targets[0, :3] = -100  # ignored positions: the mean's count must stay on the device
    return model, lambda: model.loss(ids, targets)


def _mlm_step(device):
    model = MaskedLM(MLMConfig(vocab_size=40, pad_id=0, max_len=12, d_model=32, n_heads=4, n_layers=2,
                               dropout=0.1)).to(device)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 40, (2, 12))
    ids[1, 9:] = 0  # padding: a key-padding mask that is not all True
    labels = np.full((2, 12), -100)
    labels[:, 2:5] = rng.integers(1, 40, (2, 3))
    return model, lambda: model.loss(ids, labels, attention_mask=ids != 0)


def _train_step(model, loss_fn, region):
    """forward, backward, optimizer step inside `region`; the loss is read (the user's .item()) after."""
    opt = tga.optim.AdamW(model.parameters(), lr=1e-3)
    opt.zero_grad()
    with region():
        loss = loss_fn()
        loss.backward()
        opt.step()
    return loss.item()


@pytest.mark.parametrize("make_step", [_gpt_step, _mlm_step], ids=["gpt", "mlm"])
def test_a_training_step_reads_no_device_value_on_the_host(stand_in_gpu, make_step):
    model, loss_fn = make_step("cpu")
    assert all(isinstance(p.data, DeviceArray) for p in model.parameters())
    found = []

    @contextlib.contextmanager
    def region():
        with guarded(raise_at_once=False) as reads:
            try:
                yield
            finally:
                found.extend(reads)

    loss = _train_step(model, loss_fn, region)
    assert not found, "device->host reads in a training step:\n" + "\n".join(found)
    assert np.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("loss_of", [
    lambda x, t: tga.F.cross_entropy(x, t, label_smoothing=0.1),
    lambda x, t: tga.F.nll_loss(tga.F.log_softmax(x, -1), t),
    lambda x, t: tga.F.cross_entropy(x, t, reduction="sum"),
], ids=["cross_entropy", "nll_loss", "cross_entropy_sum"])
def test_losses_with_ignored_positions_read_nothing_on_the_host(stand_in_gpu, loss_of):
    x = tga.randn(4, 6, requires_grad=True)
    targets = np.array([1, -100, 5, 0])
    with guarded(raise_at_once=False) as reads:
        loss_of(x, targets).backward()
    assert not reads, "\n".join(reads)
    assert x.grad is not None


def test_the_stand_in_device_catches_a_hidden_read(stand_in_gpu):
    """The guard can fail: a bool() of a mask, an int() of a max, a boolean index each raise."""
    x = tga.tensor(np.arange(6.0).reshape(2, 3))
    xp = stand_in_gpu.xp
    with guarded():
        for read in (lambda: bool(xp.any(x.data > 2)), lambda: int(x.data.max()),
                     lambda: x.data[x.data > 2], lambda: x.item() if x.size == 1 else x.numpy(),
                     lambda: xp.flatnonzero(x.data)):
            with pytest.raises(HostRead):
                read()


def test_value_checks_stay_on_the_cpu_and_come_back_in_debug_mode(stand_in_gpu):
    """The CPU backend checks ids (free there); a device skips the check unless debug checks are on."""
    weight = tga.randn(5, 3)
    with guarded():
        tga.F.embedding(np.array([0, 4]), weight)  # unchecked on a device: no read
    tga.set_debug_checks(True)
    try:
        with pytest.raises(IndexError, match=r"embedding: indices must lie in \[0, 5\), got values in \[0, 7\]"):
            tga.F.embedding(np.array([0, 7]), weight)
    finally:
        tga.set_debug_checks(False)


def test_the_cpu_backend_still_reports_bad_ids():
    weight = tga.randn(5, 3)
    with pytest.raises(IndexError, match=r"embedding: indices must lie in \[0, 5\)"):
        tga.F.embedding(np.array([0, 7]), weight)
    with pytest.raises(IndexError, match=r"cross_entropy: indices must lie in \[0, 3\)"):
        tga.F.cross_entropy(tga.randn(2, 3), np.array([1, 3]))


# ---------------------------------------------------------------- the real thing, on a GPU

def _cuda_skip_reason():
    try:
        import cupy  # noqa: F401
        import cupyx  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'tinygrad_attn[gpu]')"
    return None if tga.cuda_is_available() else "CuPy is installed but no CUDA GPU is visible"


@pytest.mark.skipif(_cuda_skip_reason() is not None, reason=str(_cuda_skip_reason()))
@pytest.mark.parametrize("make_step", [_gpt_step, _mlm_step], ids=["gpt", "mlm"])
def test_a_cuda_training_step_makes_no_synchronisation(make_step):
    """cupyx.allow_synchronize(False) makes CuPy raise on any device->host synchronisation."""
    import warnings

    import cupyx
    if not hasattr(cupyx, "allow_synchronize"):  # deprecated since CuPy 10
        pytest.skip("this CuPy has no cupyx.allow_synchronize; the stand-in device test above covers the library")

    @contextlib.contextmanager
    def no_synchronisation():
        with warnings.catch_warnings():  # "will be removed in future releases"
            warnings.simplefilter("ignore")
            with cupyx.allow_synchronize(False):
                yield

    tga.manual_seed(0)
    model, loss_fn = make_step("cuda")
    _train_step(model, loss_fn, contextlib.nullcontext)  # first step: kernels compile, pools fill
    tga.get_backend("cuda").synchronize()
    loss = _train_step(model, loss_fn, no_synchronisation)  # raises cupyx.DeviceSynchronized at the first one
    assert np.isfinite(loss)


@pytest.mark.skipif(_cuda_skip_reason() is not None, reason=str(_cuda_skip_reason()))
def test_on_cuda_a_bad_target_gives_nan_unchecked_and_the_clear_error_in_debug_mode():
    logits = tga.randn(3, 5, device="cuda")
    targets = np.array([1, 7, 2])
    loss = tga.F.cross_entropy(logits, targets, reduction="none").numpy()
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()  # no stray read of row 1's memory
    tga.set_debug_checks(True)
    try:
        with pytest.raises(IndexError, match=r"cross_entropy: indices must lie in \[0, 5\), got values in \[1, 7\]"):
            tga.F.cross_entropy(logits, targets)
    finally:
        tga.set_debug_checks(False)


@pytest.mark.parametrize("value, enabled", [("1", True), ("true", True), ("0", False), ("", False), ("off", False)])
def test_the_environment_switches_debug_checks_on_at_first_use(monkeypatch, value, enabled):
    from tinygrad_attn.backend import debug_checks
    monkeypatch.setattr(debug_checks, "_enabled", None)  # not decided yet
    monkeypatch.setenv(debug_checks.ENV_VAR, value)
    assert debug_checks.debug_checks_enabled() is enabled
    assert HostReadForbiddingBackend().checks_values() is enabled
    assert tga.get_backend("cpu").checks_values()  # host values: always checked
