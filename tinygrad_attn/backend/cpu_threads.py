"""The CPU backend's second core: blocks of a row-independent kernel dealt out to threads.

NumPy runs each ufunc on one core (only BLAS is threaded) and releases the GIL inside it,
so two threads working on two runs of blocks use two cores. What stood in the way is
OpenBLAS: after each threaded product its idle threads spin for 2^28 cycles (~0.1 s) on
the very cores our threads want. Measured here, two threads right after a product did a
(2, 64K)-entry job in 1.49 ms against one thread's 1.27. With OPENBLAS_THREAD_TIMEOUT=20
its threads go to sleep after 2^20 cycles (~0.4 ms), and the two threads took 0.74 ms
against 1.02. OpenBLAS reads the variable when it loads (when NumPy is imported), and again
when `openblas_read_env` is called; its threads take the new value when they are started
again (`blas_thread_shutdown_`; the next threaded product starts them). So the CPU backend
sets the spin at run time, in any program, with no variable to set before Python starts
(`set_openblas_spin`), and chooses short or long from the steps' times (spin_choice.py). A
value of OPENBLAS_THREAD_TIMEOUT of your own is kept; TINYGRAD_ATTN_PROCESS_SETTINGS=0 leaves
OpenBLAS as it loaded. Where the spin stays long (the long setting, another BLAS, an OpenBLAS
without those functions), the blocks stay on the calling thread.

While attention's blocks run on several threads, BLAS is held to one: its products are
small (T x T x head_dim per head), and two of our threads call BLAS at once.
"""
from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

MIN_BLOCKS_PER_THREAD = 2  # a hand-off to a sleeping thread costs 0.1-0.4 ms: worth it for 2+ blocks (~1 ms)
SHORT_SPIN = "20"  # the short spin: idle BLAS threads sleep after 2^20 cycles (~0.4 ms here)
OPENBLAS_OWN_SPIN = "28"  # OpenBLAS's default (THREAD_TIMEOUT in its Makefile.rule): 2^28 cycles


def default_threads() -> int:
    """OMP_NUM_THREADS (what BLAS reads too) if set, else the cores this process may use."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_spin_shortened = False  # set by set_openblas_spin: the short spin is in effect though the variable is unset


def _blas_libraries():
    from threadpoolctl import threadpool_info
    return [lib for lib in threadpool_info() if lib["user_api"] == "blas"]


def blas_threads_sleep_soon() -> bool:
    """Whether BLAS is OpenBLAS and its idle threads sleep within ~2^22 cycles (~1.5 ms),
    leaving the cores to us (another BLAS, such as MKL, has its own spin settings)."""
    value = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
    if not (_spin_shortened or (value.isdigit() and int(value) <= 22)):
        return False
    return all(lib["internal_api"] == "openblas" for lib in _blas_libraries())


SPIN_ENV_VAR = "TINYGRAD_ATTN_BLAS_SPIN"
SPIN_SETTINGS = ("auto", "short", "long")


def spin_setting() -> str:
    """TINYGRAD_ATTN_BLAS_SPIN: "auto" (the default: chosen from the steps' times, spin_choice.py),
    or "short" or "long" for good."""
    value = os.environ.get(SPIN_ENV_VAR, "auto").strip().lower() or "auto"
    if value not in SPIN_SETTINGS:
        from ..errors import ConfigError
        raise ConfigError(f"{SPIN_ENV_VAR}={os.environ[SPIN_ENV_VAR]!r}: expected one of {', '.join(SPIN_SETTINGS)}")
    return value


def spin_is_ours() -> bool:
    """Whether the backend may set OpenBLAS's spin: BLAS is an OpenBLAS with the functions that
    change it at run time, and OPENBLAS_THREAD_TIMEOUT is not set (a value of the user's stays)."""
    return "OPENBLAS_THREAD_TIMEOUT" not in os.environ and _openblas_spin_calls() is not None


def set_openblas_spin(short: bool) -> bool:
    """OpenBLAS's idle threads get the short spin, or (short=False) OpenBLAS's own default.
    True if the short spin is in effect after the call."""
    global _spin_shortened
    if not spin_is_ours():
        return blas_threads_sleep_soon()
    # the variable is set only while OpenBLAS reads it: child processes inherit nothing. Unset, it
    # would leave the spin its threads last started with, so the long spin is named too
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = SHORT_SPIN if short else OPENBLAS_OWN_SPIN
    try:
        for read_env, shutdown in _openblas_spin_calls():
            read_env()
            shutdown()  # its threads start again at the next threaded product, with the new spin
    finally:
        os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
    _spin_shortened = short
    return short


_spin_calls = None  # looked up once: [(openblas_read_env, blas_thread_shutdown_)], or False


def _openblas_spin_calls():
    """The functions that change each loaded OpenBLAS's spin, or None where a BLAS is not an
    OpenBLAS or lacks them (its spin stays as it loaded)."""
    global _spin_calls
    if _spin_calls is None:
        _spin_calls = _look_up_spin_calls()
    return _spin_calls or None


def _look_up_spin_calls():
    libraries = _blas_libraries()
    if not libraries or any(lib["internal_api"] != "openblas" for lib in libraries):
        return False
    try:
        handles = [ctypes.CDLL(lib["filepath"]) for lib in libraries]
        return [(h.openblas_read_env, h.blas_thread_shutdown_) for h in handles]
    except (OSError, AttributeError):
        return False


class BlockThreads:
    """Runs fn over a list of blocks on `threads` threads (this one included), results in block order.

    The threads take the blocks one at a time from a shared counter rather than in fixed
    shares: on a busy host a pool thread may wake late or lose its core for a while, and
    with fixed shares the caller would wait for that thread's whole share (a step of the
    masked LM took 2.6x as long with the blocks split than on one thread, beside other
    jobs). Here the caller goes on taking blocks, and waits at most for the blocks the
    others have started: a pool thread that wakes after the last block was taken has
    nothing to do, and nobody waits for it."""

    def __init__(self):
        self.threads = 1
        self._pool, self._pool_size = None, 0
        self._blas = None          # threadpoolctl's handles on the loaded BLAS libraries
        self._lock = threading.Lock()
        self._inside = threading.local()
        self._held = 0             # callers inside _one_blas_thread(); the first saves, the last restores
        self._blas_before = None

    def map(self, fn, blocks, calls_blas=False):
        """[fn(b) for b in blocks]. `calls_blas`: fn runs products (attention's), so BLAS is held
        to one thread while the blocks run on several (measured: holding it when they do not,
        at nanoGPT's size, made the step 1.07x slower)."""
        k = min(self.threads, len(blocks) // MIN_BLOCKS_PER_THREAD)
        if k <= 1 or getattr(self._inside, "run", False):  # a kernel calling one inside a block: this thread
            return [fn(b) for b in blocks]
        with self._one_blas_thread() if calls_blas else contextlib.nullcontext():
            return self._share(fn, blocks, k)

    def _share(self, fn, blocks, k):
        if self._pool_size < k - 1:  # first use, or set_num_threads asked for more
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="tinygrad_attn")
            self._pool_size = self.threads - 1
        run = _SharedRun(fn, blocks)
        for _ in range(k - 1):
            self._pool.submit(self._take, run)
        self._take(run)
        run.wait_for_the_others()
        return run.results

    def _take(self, run):
        # marked, so that a kernel which calls another inside a block (float16 LayerNorm calls the
        # float32 one) runs it here rather than waiting on a pool thread that may be this one
        self._inside.run = True
        try:
            run.take_blocks()
        finally:
            self._inside.run = False

    @contextlib.contextmanager
    def _one_blas_thread(self):
        """BLAS on one thread meanwhile; callers on several threads at once restore it once."""
        with self._lock:
            if self._held == 0:
                if self._blas is None:
                    from threadpoolctl import ThreadpoolController
                    self._blas = ThreadpoolController().select(user_api="blas").lib_controllers
                self._blas_before = [lib.get_num_threads() for lib in self._blas]
                for lib in self._blas:
                    lib.set_num_threads(1)
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                if self._held == 0:
                    for lib, n in zip(self._blas, self._blas_before):
                        lib.set_num_threads(n)


class _SharedRun:
    """One map's blocks, taken one at a time by whichever thread is free."""

    def __init__(self, fn, blocks):
        self.fn, self.blocks = fn, blocks
        self.results = [None] * len(blocks)
        self._next = itertools.count()    # next() is atomic under the GIL: each index goes to one thread
        self._started = self._finished = 0
        self._error = None
        self._done = threading.Condition()

    def take_blocks(self):
        while self._error is None:
            with self._done:
                i = next(self._next)
                if i >= len(self.blocks):
                    return
                self._started += 1
            try:
                self.results[i] = self.fn(self.blocks[i])
            except BaseException as e:  # noqa: BLE001  (raised again in the caller's thread)
                self._error = self._error or e
            finally:
                with self._done:
                    self._finished += 1
                    self._done.notify_all()

    def wait_for_the_others(self):
        """Wait until every block that was started is finished, then raise the first error."""
        with self._done:
            self._done.wait_for(lambda: self._finished == self._started)
        if self._error is not None:
            raise self._error
