"""The run-time choice of OpenBLAS's spin (backend/spin_choice.py): the logic on a simulated
clock, and the CPU backend's use of it in a real process."""
import os
import subprocess
import sys

import pytest
from helpers import needs_openblas

import tinygrad_attn as tga
from tinygrad_attn.backend import spin_choice
from tinygrad_attn.backend.spin_choice import SpinChoice


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def train(choice, clock, seconds, steps, products=10):
    """A loop of `steps` steps whose step takes seconds[short] with the setting in use, the time spent
    product by product (a setting may change in the middle of a step). Returns each step's time."""
    took = []
    for _ in range(steps):
        start = clock.now
        choice.step()
        for _ in range(products):
            if choice.on_trial:
                choice.product()
            clock.now += seconds[choice.short] / products
        took.append(clock.now - start)
    return took


def a_choice(short=True):
    clock, used = Clock(), []
    choice = SpinChoice(lambda short: used.append(short), short=short, clock=clock)
    return choice, clock, used


def test_it_keeps_the_faster_setting_and_tries_the_other_less_and_less_often():
    choice, clock, used = a_choice()
    took = train(choice, clock, {True: 1.0, False: 1.3}, 900)
    assert choice.short and not choice.on_trial and all(chosen for _, chosen, _, _ in choice.history)
    trial_steps = [steps for steps, *_ in choice.history]
    gaps = [b - a for a, b in zip(trial_steps, trial_steps[1:])]
    assert gaps == sorted(gaps) and gaps[-1] > 3 * gaps[0], trial_steps   # the waits grow
    assert sum(took) < 900 * 1.02   # the trials cost under 2% of the run
    assert used == [False, True] * len(choice.history)   # each trial switched once and back once


def test_it_moves_to_the_other_setting_when_that_is_faster_and_stays_there():
    choice, clock, used = a_choice()
    took = train(choice, clock, {True: 0.23, False: 0.11}, 600)
    assert not choice.short and used[0] is False
    assert [chosen for _, chosen, _, _ in choice.history] == [False] * len(choice.history)
    assert sum(took[50:]) < 550 * 0.11 * 1.05


def test_a_setting_far_worse_is_given_up_within_its_first_step():
    choice, clock, used = a_choice()
    took = train(choice, clock, {True: 1.0, False: 30.0}, 500)
    assert choice.short
    # the step on trial ends after the first product past twice the best step: 3 s here, not 30
    assert max(took) < spin_choice.GIVE_UP * 1.0 + 30.0 / 10 + 1.0
    assert sum(took) < 500 * 1.0 + len(choice.history) * 4.0


def test_a_neighbour_that_arrives_later_is_noticed_at_a_later_trial():
    choice, clock, _ = a_choice()
    train(choice, clock, {True: 1.0, False: 1.3}, 300)
    assert choice.short
    train(choice, clock, {True: 2.1, False: 1.0}, 2 * spin_choice.LONGEST_WAIT + 20)
    assert not choice.short


def test_one_slow_step_in_a_trial_does_not_decide_it():
    choice, clock, _ = a_choice()
    seconds = {True: 1.0, False: 1.03}
    train(choice, clock, seconds, spin_choice.WARM_STEPS + 2)
    seconds[True] = 5.0  # an evaluation inside the timed steps of the setting in use
    train(choice, clock, seconds, 1)
    seconds[True] = 1.0
    train(choice, clock, seconds, 20)
    assert choice.short and choice.history and all(chosen for _, chosen, _, _ in choice.history)


# ---------------------------------------------------------------- the CPU backend, in its own process


PROBE = """
import time, numpy as np, tinygrad_attn as tga
from tinygrad_attn.backend import cpu_threads
a = np.ones((512, 512), np.float32)
def spun():  # CPU time of the process while its main thread sleeps right after a threaded product
    a @ a; t = time.process_time(); time.sleep(0.05); return time.process_time() - t
backend = tga.get_backend("cpu")
def state():
    return [round(min(spun() for _ in range(3)), 4), cpu_threads.blas_threads_sleep_soon(), backend.workers.threads]
print(backend.spin is not None, *state(), end=" ")
if backend.spin is not None:
    backend.spin._switch(False)
    print(*state(), end=" ")
    backend.spin._switch(True)
    print(*state(), end=" ")
    x = tga.randn(4, 4, requires_grad=True)
    for _ in range(3):
        (x @ x).sum().backward()
    print(backend.spin._steps, end="")
"""


def _probe(**env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("OPENBLAS_THREAD_TIMEOUT", "TINYGRAD_ATTN_PROCESS_SETTINGS", "TINYGRAD_ATTN_BLAS_SPIN")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=dict(base, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", **env))
    return out


@needs_openblas
def test_by_default_the_backend_chooses_and_each_choice_takes_effect_at_run_time():
    out = _probe()
    assert out.returncode == 0, out.stderr
    chooses, short_spun, short, threads, long_spun, long_, long_threads, again_spun, again, again_threads, steps = \
        out.stdout.split()
    assert chooses == "True" and steps == "3"           # every backward walk is a step boundary
    assert (short, threads, long_, long_threads, again, again_threads) == ("True", "2", "False", "1", "True", "2")
    # the long spin burns the core through the sleep; the short one sleeps
    assert float(short_spun) < 0.25 * float(long_spun) and float(again_spun) < 0.25 * float(long_spun), out.stdout


@needs_openblas
@pytest.mark.parametrize("env, short, threads", [({"TINYGRAD_ATTN_BLAS_SPIN": "short"}, "True", "2"),
                                                 ({"TINYGRAD_ATTN_BLAS_SPIN": "long"}, "False", "1"),
                                                 ({"OPENBLAS_THREAD_TIMEOUT": "28"}, "False", "1"),
                                                 ({"TINYGRAD_ATTN_PROCESS_SETTINGS": "0"}, "False", "1")])
def test_a_fixed_setting_or_a_users_own_spin_is_kept_and_nothing_is_chosen(env, short, threads):
    out = _probe(**env)
    assert out.returncode == 0, out.stderr
    chooses, _, is_short, n = out.stdout.split()
    assert (chooses, is_short, n) == ("False", short, threads)


def test_an_unknown_spin_setting_is_one_clear_error():
    out = _probe(TINYGRAD_ATTN_BLAS_SPIN="medium")
    assert out.returncode != 0 and "TINYGRAD_ATTN_BLAS_SPIN='medium'" in out.stderr and "auto, short, long" in out.stderr


def test_products_check_the_clock_only_while_a_setting_is_on_trial(monkeypatch):
    backend = tga.get_backend("cpu")
    calls = []

    class Recorder:
        on_trial = False

        def step(self):
            calls.append("step")

        def product(self):
            calls.append("product")
    recorder = Recorder()
    monkeypatch.setattr(backend, "spin", recorder)
    x = tga.randn(3, 3, requires_grad=True)
    (x @ x).sum().backward()
    assert calls == ["step"]
    recorder.on_trial = True
    x @ x
    assert calls == ["step", "product"]
