"""The learning-rate schedule and its length: linear warm-up, cosine decay to zero, and a wall-clock budget.

``train --time-budget 10m`` (Ultralytics' ``time`` argument, in spirit) trains for as many steps as fit in ten
minutes *and* finishes its schedule: the cosine decay needs the total step count up front, so with a budget
the total is re-planned after every step from the pace measured so far, and the decay follows the plan. The
pace is measured from the first logging step on (``--log-every``), so that compilation, CUDA-graph capture and
cold caches in the first steps do not shrink the plan; until then the run warms up towards the peak rate as
``--epochs`` would have it. In-training evaluations and checkpoints count, so the budget is the training loop's
wall-clock time; set-up (teacher loading, decoding into memory, the evaluation bank and its first point) and the
final evaluation are outside it. Under torchrun each rank measures its own pace and the trainer makes them agree
(the smallest plan) at logging steps only, so that the step count stays the same on every rank. Warm-up and decay
follow MoCo-v2/SEED's cosine schedule (the papers' code steps it per epoch; here per step).
"""
from __future__ import annotations

import math
import time


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))


class TimeBudget:
    """The pace of a run that must end ``seconds`` after it started; ``used`` is the wall-clock time spent by
    earlier sessions of the same run (``--resume``): the budget is for the whole run, not for each session."""

    def __init__(self, seconds: float, used: float = 0.0, clock=time.perf_counter) -> None:
        self.seconds, self.used, self.clock = seconds, used, clock
        self.started = clock()
        self.anchor: tuple[int, float] | None = None  # (step, time) where the pace measurement begins

    def spent(self) -> float:
        return self.used + self.clock() - self.started

    def expired(self) -> bool:
        return self.spent() >= self.seconds

    def plan(self, step: int) -> int | None:
        """The total step count that ends the run when the budget does, at the pace measured since the first
        call (the anchor); None while no pace is known yet."""
        now = self.clock()
        if self.anchor is None:
            self.anchor = (step, now)
            return None
        steps, seconds = step - self.anchor[0], now - self.anchor[1]
        if steps <= 0 or seconds <= 0:
            return None
        return step + int(max(0.0, self.seconds - self.spent()) * steps / seconds)


class Schedule:
    """The run's length (``total`` steps, ``warmup`` of them) and its learning rate at each step.

    Without a budget the length is ``epochs`` x ``per_epoch`` (capped by ``max_steps``); with one
    (:meth:`start_budget`, just before the first step) it starts there and :meth:`tick` re-plans it after every
    step once the pace is known.
    """

    def __init__(self, per_epoch: int, epochs: int, warmup_epochs: float, peak: float,
                 max_steps: int | None = None) -> None:
        self.per_epoch, self.warmup_epochs, self.peak = per_epoch, warmup_epochs, peak
        self.max_steps, self.budget = max_steps, None
        self.total, self.warmup = 0, 0
        self.set_total(per_epoch * epochs)

    def set_total(self, total: int) -> None:
        """The run's length in steps (capped by ``max_steps``), the warm-up fitted inside it."""
        self.total = min(total, self.max_steps) if self.max_steps is not None else total
        self.warmup = min(int(self.warmup_epochs * self.per_epoch), max(0, self.total - 1))

    def lr(self, step: int) -> float:
        return lr_at(step, self.total, self.warmup, self.peak)

    def start_budget(self, budget: TimeBudget) -> None:
        self.budget = budget

    def tick(self, step: int, logging: bool) -> None:
        """After each step (``logging``: a logging step): with a budget, a spent one ends the run at ``step``;
        otherwise the plan at the pace measured since the first logging step becomes the length."""
        if self.budget is None or step >= self.total:
            return
        if self.budget.expired():
            self.total = step
        elif self.budget.anchor is not None or logging:
            plan = self.budget.plan(step)
            if plan is not None:
                self.set_total(max(plan, step + 1))
