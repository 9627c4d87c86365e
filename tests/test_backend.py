"""The backend contract (on every available device), device names and errors, the ops'
contract as an abstract class that both backends implement, and the LossScaler.
The named kernels are checked against the ops' Tensor-level backward in test_fast_backward.py."""
import inspect
import math
import os
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

import tinygrad_attn as tga
from tinygrad_attn import backend as B
from tinygrad_attn import functional as F
from tinygrad_attn.amp import LossScaler
from tinygrad_attn.errors import DeviceError, GraphError
from tinygrad_attn.testing import gradcheck

from helpers import needs_openblas


def host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


# ---------------------------------------------------------------- the contract, per device

def test_backend_names_its_device_and_namespace(device):
    b = tga.get_backend(device)
    assert b.device == device
    assert b is tga.get_backend(device)  # created once
    a = b.xp.ones((2, 3), dtype=np.float32)
    assert a.shape == (2, 3) and a.dtype == np.float32
    if device == "cpu":
        assert b.xp is np
    assert isinstance(b, B.Backend)


def test_asarray_and_to_host_round_trip(device):
    b = tga.get_backend(device)
    values = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    on_device = b.asarray(values)
    assert type(on_device).__module__.split(".")[0] == b.xp.__name__.split(".")[0]
    back = b.to_host(on_device)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, values)
    assert b.asarray([1, 2], dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(b.to_host(b.asarray([[1.5, 2.5]])), [[1.5, 2.5]])


def test_seeded_generator_repeats_and_differs_across_seeds(device):
    b = tga.get_backend(device)

    def draw():
        return (host(b.random_normal((4, 5), np.float32)), host(b.random_uniform((7,), np.float64)),
                host(b.random_integers(3, 9, (50,))))

    b.seed(123)
    first = draw()
    b.seed(123)
    again = draw()
    b.seed(124)
    other = draw()
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], other[0])


def test_manual_seed_makes_tensor_factories_repeat(device):
    tga.manual_seed(7)
    a = tga.randn(3, 4, device=device).numpy()
    tga.manual_seed(7)
    np.testing.assert_array_equal(tga.randn(3, 4, device=device).numpy(), a)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_random_draws_have_the_asked_dtype_shape_and_range(device, dtype):
    b = tga.get_backend(device)
    n = host(b.random_normal((200, 50), dtype))
    u = host(b.random_uniform((10_000,), dtype))
    assert n.dtype == dtype and n.shape == (200, 50)
    assert abs(float(n.astype(np.float64).mean())) < 0.05 and abs(float(n.astype(np.float64).std()) - 1) < 0.05
    assert u.dtype == dtype and u.min() >= 0 and u.max() <= 1  # float16 may round 0.9999 up to 1
    i = host(b.random_integers(-2, 3, (1000,)))
    assert i.dtype == np.int64 and i.min() == -2 and i.max() == 2


def test_scatter_add_accumulates_repeated_indices(device):
    b = tga.get_backend(device)
    rng = np.random.default_rng(0)
    ids = np.array([0, 3, 3, 1, 3, 0, 4])
    values = rng.standard_normal((7, 2)).astype(np.float32)
    target = b.xp.zeros((5, 2), dtype=np.float32)
    b.scatter_add(target, (b.asarray(ids),), b.asarray(values))
    expected = np.zeros((5, 2), dtype=np.float32)
    for i, row in zip(ids, values):  # the obvious loop, independent of the code under test
        expected[i] += row
    np.testing.assert_allclose(host(target), expected, rtol=1e-6)
    # a 2-d index (row, column pairs), repeats included
    target = b.xp.zeros((3, 3), dtype=np.float64)
    rows, cols = np.array([0, 2, 0, 0]), np.array([1, 2, 1, 0])
    b.scatter_add(target, (b.asarray(rows), b.asarray(cols)), b.asarray(np.array([1.0, 2.0, 3.0, 4.0])))
    np.testing.assert_array_equal(host(target), [[4, 4, 0], [0, 0, 0], [0, 0, 2]])
    # several index arrays picking rows of trailing dims, broadcasting, negative and repeated
    target = b.xp.zeros((3, 4, 2), dtype=np.float64)
    rows, cols = np.array([[0], [2], [-1]]), np.array([1, -4, 1])
    values = rng.standard_normal((3, 3, 2))
    b.scatter_add(target, (b.asarray(rows), b.asarray(cols)), b.asarray(values))
    expected = np.zeros((3, 4, 2))
    for i in range(3):
        for j in range(3):
            expected[rows[i, 0], cols[j]] += values[i, j]
    np.testing.assert_allclose(host(target), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_and_column_reductions_match_numpy(device, dtype):
    b = tga.get_backend(device)
    rng = np.random.default_rng(0)
    a, c = (rng.standard_normal((3, 5, 7)).astype(dtype) for _ in range(2))
    a[0, 1, 2], a[1, 0, :] = np.inf, -np.inf  # an inf entry, a row of -inf
    ad, cd = b.asarray(a), b.asarray(c)
    for got, want in [(b.row_max(ad), a.max(-1, keepdims=True)), (b.row_sum(cd), c.sum(-1, keepdims=True)),
                      (b.row_dot(ad[2:], cd[2:]), (a[2:] * c[2:]).sum(-1, keepdims=True)),
                      (b.column_sum(cd[0]), c[0].sum(0)), (b.column_dot(ad[2], cd[2]), (a[2] * c[2]).sum(0))]:
        assert got.shape == want.shape
        np.testing.assert_allclose(host(got), want, rtol=1e-5)


def test_a_nan_score_makes_its_softmax_row_nan_and_leaves_the_others(device):
    # row_max may skip NaN (NumPy's fmax does): the row must still come out NaN, not a
    # distribution that silently ignores the NaN entry
    b = tga.get_backend(device)
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    for mask in (None, np.array([[True, True, False], [True, True, True]])):
        p = host(b.softmax(b.asarray(x), -1, None if mask is None else b.asarray(mask)))
        assert np.isnan(p[0]).all()
        np.testing.assert_allclose(p[1], np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())


def test_erf_matches_math_erf(device):
    b = tga.get_backend(device)
    xs = np.concatenate([np.linspace(-6, 6, 241), [0.0, 1e-8, -1e-8, 30.0, -30.0]])
    got = host(b.erf(b.asarray(xs)))
    np.testing.assert_allclose(got, [math.erf(v) for v in xs], rtol=1e-12, atol=1e-15)
    got32 = host(b.erf(b.asarray(xs.astype(np.float32))))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, [math.erf(v) for v in xs.astype(np.float32)], rtol=1e-6, atol=1e-7)


def test_tensor_knows_its_device_and_moves(device):
    t = tga.tensor([[1.0, 2.0]], device=device)
    assert t.device == device and t.dtype == np.float32
    assert t.to("cpu").device == "cpu" and t.to(device) is t
    np.testing.assert_array_equal(t.to("cpu").numpy(), [[1.0, 2.0]])
    x = tga.tensor([1.0, -2.0, 3.0], requires_grad=True)
    moved = x.to(device)
    (moved * moved).sum().backward()  # the move is differentiable: grad comes back to the CPU
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])
    assert x.grad.device == "cpu"


# ---------------------------------------------------------------- names and errors

@pytest.mark.parametrize("name,canonical", [("cpu", "cpu"), ("CPU", "cpu"), ("cuda", "cuda"), ("CUDA", "cuda"),
                                            ("cuda:0", "cuda"), ("gpu", "cuda")])
def test_device_names_are_normalized(name, canonical):
    assert B.normalize_device(name) == canonical


@pytest.mark.parametrize("name", ["tpu", "cuda:1", "", "metal"])
def test_unknown_device_names_are_refused_by_name(name):
    with pytest.raises(DeviceError, match="unknown device") as err:
        B.normalize_device(name)
    assert repr(name) in str(err.value)
    with pytest.raises(DeviceError):
        tga.zeros(2, device=name)


@pytest.fixture
def no_cuda_backend(monkeypatch):
    """Forget any created CUDA backend for the test (restored afterwards)."""
    monkeypatch.delitem(B._BACKENDS, "cuda", raising=False)
    monkeypatch.delitem(sys.modules, "tinygrad_attn.backend.cupy_backend", raising=False)


def test_cuda_without_cupy_says_so_and_how_to_install(monkeypatch, no_cuda_backend):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(DeviceError) as err:
        tga.get_backend("cuda")
    msg = str(err.value)
    assert "needs CuPy, which is not installed" in msg
    assert "pip install 'tinygrad_attn[gpu]'" in msg
    with pytest.raises(DeviceError, match="CuPy"):
        tga.tensor([1.0], device="cuda")
    with pytest.raises(DeviceError, match="CuPy"):
        tga.ones(3).to("cuda")
    assert tga.cuda_is_available() is False
    assert "cuda" not in B._BACKENDS


def _fake_cupy(get_count):
    runtime = types.SimpleNamespace(getDeviceCount=get_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def test_cuda_with_cupy_but_no_gpu_says_so(monkeypatch, no_cuda_backend):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    with pytest.raises(DeviceError, match="no GPU is visible") as err:
        tga.get_backend("cuda")
    assert "tinygrad_attn[gpu]" in str(err.value)

    def broken():
        raise RuntimeError("cudaErrorInsufficientDriver")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(broken))
    with pytest.raises(DeviceError, match="CUDA is not usable.*cudaErrorInsufficientDriver"):
        tga.get_backend("cuda")


def test_mixing_devices_in_one_op_names_both():
    cpu = tga.ones(2, 3)
    # labelled "cuda" only: the check comes before any array work, so no GPU is needed
    elsewhere = tga.Tensor.wrap(np.ones((2, 3), dtype=np.float32), "cuda")
    tall = tga.Tensor.wrap(np.ones((3, 2), dtype=np.float32), "cuda")
    for op in (lambda: cpu + elsewhere, lambda: elsewhere * cpu, lambda: F.matmul(cpu, tall)):
        with pytest.raises(DeviceError) as err:
            op()
        assert "cpu" in str(err.value) and "cuda" in str(err.value)


# ---------------------------------------------------------------- loss scaling

class _CountingOptimizer:
    def __init__(self, params):
        self.param_groups = [{"params": list(params)}]
        self.steps = 0

    def step(self):
        self.steps += 1


def _param_with_grad(values):
    p = tga.tensor(np.zeros(len(values)), requires_grad=True)
    p.grad = tga.tensor(np.asarray(values, dtype=np.float32))
    return p


def test_loss_scaler_scales_and_unscales():
    scaler = LossScaler(init_scale=1024.0)
    x = tga.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    assert scaler.scale(loss).item() == 5.0 * 1024
    scaler.scale(loss).backward()
    opt = _CountingOptimizer([x])
    assert scaler.step(opt) is True and opt.steps == 1
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # true gradient, not scaled


def test_loss_scaler_skips_non_finite_steps_and_backs_off():
    scaler = LossScaler(init_scale=2.0 ** 10, growth_interval=2)
    bad = _param_with_grad([1.0, np.inf])
    opt = _CountingOptimizer([bad, _param_with_grad([1.0, 2.0])])
    assert scaler.step(opt) is False and opt.steps == 0 and scaler.skipped_steps == 1
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 9
    bad.grad = tga.tensor([np.nan, 0.0])
    assert scaler.step(opt) is False
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 8
    # two clean steps grow the scale again
    for _ in range(2):
        bad.grad = tga.tensor([1.0, 1.0])
        assert scaler.step(opt) is True
        scaler.update()
    assert scaler.get_scale() == 2.0 ** 9 and opt.steps == 2


def test_static_loss_scaler_keeps_its_scale_but_still_skips():
    scaler = LossScaler(init_scale=128.0, dynamic=False)
    opt = _CountingOptimizer([_param_with_grad([np.inf])])
    assert scaler.step(opt) is False
    scaler.update()
    assert scaler.get_scale() == 128.0


def test_loss_scaler_unscale_before_clipping_and_state_round_trip():
    scaler = LossScaler(init_scale=8.0, min_scale=4.0)
    p = _param_with_grad([8.0, 16.0])
    assert scaler.unscale_([p]) is True
    np.testing.assert_allclose(p.grad.numpy(), [1.0, 2.0])
    opt = _CountingOptimizer([p])
    scaler.step(opt)  # already unscaled: not divided again
    np.testing.assert_allclose(p.grad.numpy(), [1.0, 2.0])
    scaler.update()
    p.grad = tga.tensor([np.inf])
    scaler.step(opt)
    scaler.update()
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 4.0  # floored at min_scale
    other = LossScaler()
    other.load_state_dict(scaler.state_dict())
    assert other.get_scale() == 4.0 and other.skipped_steps == 2


def test_loss_scaler_recovers_gradients_that_underflow_in_float16():
    """A float16 gradient of 1e-8 flushes to zero unless the loss is scaled up first."""
    c = tga.tensor(np.full(4, 1e-3), dtype=np.float16)

    def loss_of(w):  # float16 compute, float32 master weights and loss
        return (w.astype(np.float16) * c).sum().astype(np.float32) * 1e-5

    w = tga.tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    loss_of(w).backward()
    np.testing.assert_array_equal(w.grad.numpy(), 0.0)  # underflow without scaling

    w.grad = None
    opt = tga.optim.SGD([w], lr=1e6)
    scaler = LossScaler(init_scale=2.0 ** 20)
    scaler.scale(loss_of(w)).backward()
    assert scaler.unscale_(opt)
    np.testing.assert_allclose(w.grad.numpy(), 1e-8, rtol=5e-3)
    assert scaler.step(opt)
    np.testing.assert_allclose(w.numpy(), 1 - 1e-2, rtol=1e-4)
    with pytest.raises(ValueError):
        LossScaler(backoff_factor=1.5)


# ---------------------------------------------------------------- kernels run in cache-sized blocks

@pytest.fixture
def cpu_workers():
    """The CPU backend's block threads, put back as they were (and BLAS's threads too)."""
    from threadpoolctl import threadpool_limits
    workers = tga.get_backend("cpu").workers
    before = workers.threads
    with threadpool_limits(limits=None):
        yield workers
    workers.threads = before


def _blas_threads():
    from threadpoolctl import threadpool_info
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_kernels_run_in_blocks_and_on_threads_give_the_whole_array_results(monkeypatch, cpu_workers):
    """The CPU backend runs attention, GELU and LayerNorm block by block, on one thread or
    several: the same numbers as whole, and BLAS's threads as they were afterwards."""
    from tinygrad_attn import nn
    from tinygrad_attn.backend import numpy_backend
    rng = np.random.default_rng(0)
    x_data = rng.standard_normal((5, 6, 8))
    kpm = rng.random((5, 6)) < 0.8
    blas_before = _blas_threads()
    results = []
    # whole arrays; blocks of a row or a batch item; the same blocks dealt to 2 and 3 threads
    for elements, threads in ((1 << 30, 1), (7, 1), (7, 2), (7, 3)):
        monkeypatch.setattr(numpy_backend, "_BLOCK_ELEMENTS", elements)
        cpu_workers.threads = threads
        tga.manual_seed(0)
        block = nn.TransformerBlock(8, 2, dropout=0.2).double()
        x = tga.tensor(x_data, requires_grad=True)
        y = block(x, key_padding_mask=kpm, is_causal=True)
        (y * y).sum().backward()
        results.append([y.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in block.parameters()])
    for other in results[1:]:
        for whole, in_blocks in zip(results[0], other):
            np.testing.assert_allclose(in_blocks, whole, rtol=1e-12, atol=1e-12)
    assert _blas_threads() == blas_before


def test_attention_in_blocks_gives_a_learned_bias_its_whole_gradient(monkeypatch, cpu_workers):
    """A per-batch-item bias and a shared one: their gradients (the scores', assembled from the
    blocks) are the same whole or in blocks on several threads."""
    from tinygrad_attn.backend import numpy_backend
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((4, 2, 3, 5)) for _ in range(3))
    biases = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((2, 1, 3))
    results = []
    for elements, threads in ((1 << 30, 1), (7, 2)):
        monkeypatch.setattr(numpy_backend, "_BLOCK_ELEMENTS", elements)
        cpu_workers.threads = threads
        ts = [tga.tensor(a, requires_grad=True) for a in (q, k, v)]
        for b in biases:
            bias = tga.tensor(b, requires_grad=True)
            (F.scaled_dot_product_attention(*ts, attn_mask=bias) ** 2).sum().backward()
            results.append(bias.grad.numpy())
    for whole, in_blocks in zip(results[:2], results[2:]):
        np.testing.assert_allclose(in_blocks, whole, rtol=1e-12, atol=1e-12)


def test_an_error_in_a_block_reaches_the_caller_and_blas_threads_come_back(cpu_workers):
    cpu_workers.threads = 2
    blas_before = _blas_threads()

    def fail_on_the_last(block):
        if block == 3:
            raise ValueError("block 3")
        return block

    def blas_threads_seen(block):
        return _blas_threads()

    assert cpu_workers.map(lambda b: b * 10, [0, 1, 2, 3]) == [0, 10, 20, 30]
    assert all(n == 1 for seen in cpu_workers.map(blas_threads_seen, [0, 1, 2, 3], calls_blas=True) for n in seen)
    assert cpu_workers.map(blas_threads_seen, [0, 1, 2, 3]) == [blas_before] * 4
    with pytest.raises(ValueError, match="block 3"):  # raised on the pool's thread
        cpu_workers.map(fail_on_the_last, [0, 1, 2, 3], calls_blas=True)
    assert _blas_threads() == blas_before


def test_a_block_that_maps_blocks_again_does_not_wait_on_itself(cpu_workers):
    import threading
    cpu_workers.threads = 2
    result = []
    runner = threading.Thread(daemon=True, target=lambda: result.append(
        cpu_workers.map(lambda b: sum(cpu_workers.map(lambda c: b * c, [1, 2, 3, 4])), [1, 2, 3, 4])))
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "map inside map waits forever"
    assert result == [[10, 20, 30, 40]]


@pytest.mark.parametrize("timeout, split", [(None, False), ("28", False), ("20", True), ("", False)])
def test_kernels_go_to_threads_only_when_blas_threads_sleep_soon(monkeypatch, cpu_workers, timeout, split):
    # OpenBLAS's idle threads spin for ~0.1 s by default, on the cores our threads would use
    from tinygrad_attn.backend import cpu_threads
    monkeypatch.setattr(cpu_threads, "_spin_shortened", False)  # as if the backend had not shortened it
    if timeout is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", timeout)
    assert tga.set_num_threads(2) == 2
    assert cpu_workers.threads == (2 if split else 1)
    assert tga.set_num_threads(1) == 1 and cpu_workers.threads == 1


SPIN_PROBE = """
import time, numpy as np, tinygrad_attn as tga
a = np.ones((512, 512), np.float32)
def spun():  # CPU time of the process while its main thread sleeps right after a threaded product
    a @ a; t = time.process_time(); time.sleep(0.05); return time.process_time() - t
before = min(spun() for _ in range(3))
tga.zeros(1)  # the CPU backend's first use
after = min(spun() for _ in range(3))
from tinygrad_attn.backend import cpu_threads
print(before, after, cpu_threads.blas_threads_sleep_soon(), tga.get_backend("cpu").workers.threads)
"""


def _spin_probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "TINYGRAD_ATTN_PROCESS_SETTINGS")}
    out = subprocess.run([sys.executable, "-c", SPIN_PROBE], capture_output=True, text=True, check=True,
                         env=dict(base, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", **env))
    before, after, short, threads = out.stdout.split()
    return float(before), float(after), short == "True", int(threads)



@needs_openblas
def test_first_use_shortens_openblas_spin_with_no_variable_set():
    # before: OpenBLAS's idle thread spins through the 50 ms sleep (~0.1 s by default); after: it sleeps
    before, after, short, threads = _spin_probe()
    assert short and threads == 2
    assert after < 0.25 * before, (before, after)


@needs_openblas
def test_opting_out_or_a_users_own_spin_leaves_openblas_as_it_loaded():
    before, after, short, threads = _spin_probe(TINYGRAD_ATTN_PROCESS_SETTINGS="0")
    assert not short and threads == 1 and after > 0.25 * before, (before, after)
    before, after, short, threads = _spin_probe(OPENBLAS_THREAD_TIMEOUT="28")
    assert not short and threads == 1 and after > 0.25 * before, (before, after)


def test_the_command_runs_in_its_own_process():
    from tinygrad_attn.models import cli
    assert "execv" not in inspect.getsource(cli.console)  # no restart: nothing to set before Python starts


def test_blocks_cut_rows_evenly():
    from tinygrad_attn.backend.numpy_backend import _blocks
    assert _blocks(10, 3) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert _blocks(10, 8) is None  # one block holds them all
    assert _blocks(3, 0) == [slice(0, 1), slice(1, 2), slice(2, 3)]   # a row is the smallest block


def test_set_num_threads_sets_blas_threads():
    from threadpoolctl import threadpool_info, threadpool_limits
    with threadpool_limits(limits=None):  # puts BLAS back as it was on the way out
        assert tga.set_num_threads(1) == 1
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")


def test_row_kernels_take_empty_arrays():
    """GELU and LayerNorm flatten leading axes into rows: an empty last or leading axis still works."""
    from tinygrad_attn import functional as F
    x = tga.zeros((2, 3, 0), requires_grad=True)
    F.gelu(x, approximate="tanh").sum().backward()
    assert x.grad.shape == (2, 3, 0)
    z = tga.zeros((2, 0, 4), requires_grad=True)
    tga.nn.LayerNorm(4)(z).sum().backward()
    assert z.grad.shape == (2, 0, 4)


def test_the_blocks_go_to_whichever_thread_is_free_and_a_busy_one_holds_nobody_back():
    from tinygrad_attn.backend.cpu_threads import BlockThreads
    workers = BlockThreads()
    workers.threads = 2
    assert workers.map(lambda b: b * 2, list(range(8))) == list(range(0, 16, 2))  # starts the pool's thread
    release = threading.Event()
    threading.Timer(3.0, release.set).start()  # a held-back caller would be let go after 3 s
    workers._pool.submit(release.wait)  # the pool's one thread is busy elsewhere (another job has its core)
    start = time.perf_counter()
    assert workers.map(lambda b: b + 1, list(range(8))) == list(range(1, 9))
    assert time.perf_counter() - start < 1.5, "the caller waited for a thread that never took a block"
    release.set()

