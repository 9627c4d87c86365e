"""OpenBLAS's idle-thread spin, chosen at run time from the training steps' own times.

Two settings of the CPU backend trade against each other (cpu_threads.py explains both):
  short  OpenBLAS's idle threads sleep after ~2^20 cycles, and the blocks of the
         row-independent kernels go to our threads on the cores BLAS left;
  long   OpenBLAS's own spin (~2^28 cycles): its threads stay awake between products,
         and the blocks stay on the calling thread.
Measured here (benchmarks/bench_busy_host.py), neither is within 10% of the other in every
condition: on a quiet host or beside CPU hogs short wins (a user's GPT-mini step 197 vs
262 ms); beside another process's threaded BLAS, nanoGPT's recipe of many small products
took 230 ms a step with short against 110 with long, since every product wakes threads that
went to sleep, and the neighbour's threads hold the cores they wake on.

So the backend measures. A training loop repeats one step, and every step starts one
backward walk (`step()` is called there), so the time between two walks is a step's time:
  - after a few steps it times three steps with the setting in use, switches, lets one step
    settle, times three more, and keeps the other setting only if its fastest step was at
    least 5% faster (min over three: robust to one slow step, such as an evaluation);
  - while the other setting is on trial, each product checks the clock (`product()`), and a
    step already twice as long as the best with the first setting ends the trial at once, so
    a setting that is 30x worse costs about two steps, not thirty;
  - the trial is repeated, since a neighbour may come or go: after 32 steps, then twice as
    long each time the choice stays the same (up to 512), and after 32 again when it changed.
On a quiet host a trial costs about one step's time in four steps at 1.3x: ~1% of a 300-step run.
"""
from __future__ import annotations

import time

WARM_STEPS = 2        # the first steps (allocations, lazy imports, thread starts) are not timed
TIMED_STEPS = 3       # steps timed with each setting
SETTLE_STEPS = 1      # steps after a switch that are not timed (threads restart, caches refill)
MARGIN = 0.05         # the other setting is kept only if it is at least this much faster
GIVE_UP = 2.0         # a step of the setting on trial this many times the best of the first ends the trial
FIRST_WAIT, LONGEST_WAIT = 32, 512  # steps between trials


class SpinChoice:
    """Chooses between two settings by timing steps. `use(short: bool)` applies one."""

    def __init__(self, use, short=True, clock=time.perf_counter):
        self._use, self._clock = use, clock
        self.short = short
        self.on_trial = False      # while True, the backend calls product() before each product
        self.history = []          # (steps seen, short, [times with the first], [times with the other]): for reports
        self._steps = 0
        self._last = None          # when the current step began
        self._phase, self._left = "wait", WARM_STEPS
        self._wait = FIRST_WAIT
        self._first, self._other = [], []

    def step(self) -> None:
        """A step boundary (a backward walk begins)."""
        now = self._clock()
        took = None if self._last is None else now - self._last
        self._last = now
        self._steps += 1
        if took is None:
            return
        if self._phase == "first":
            self._first.append(took)
        elif self._phase == "other":
            self._other.append(took)
        self._left -= 1
        if self._left > 0:
            return
        if self._phase == "wait":
            self._phase, self._left, self._first = "first", TIMED_STEPS, []
        elif self._phase == "first":
            self._switch(not self.short)
            self._phase, self._left, self._other = "settle", SETTLE_STEPS, []
            self.on_trial = True
        elif self._phase == "settle":
            self._phase, self._left = "other", TIMED_STEPS
        else:
            self._decide(keep_other=min(self._other) < (1 - MARGIN) * min(self._first))

    def product(self) -> None:
        """Called before each product while a setting is on trial: give up on one far too slow."""
        if self._clock() - self._last > GIVE_UP * min(self._first):
            self._decide(keep_other=False)

    def _decide(self, keep_other: bool) -> None:
        self.on_trial = False
        self.history.append((self._steps, self.short if keep_other else not self.short,
                             list(self._first), list(self._other)))
        if keep_other:
            self._wait = FIRST_WAIT
        else:
            self._switch(not self.short)
            self._wait = min(2 * self._wait, LONGEST_WAIT)
        self._phase, self._left = "wait", self._wait
        self._last = None  # the step under way ran partly with the other setting: not timed

    def _switch(self, short: bool) -> None:
        self.short = short
        self._use(short)
