"""The learning-rate schedule and --time-budget (distill.schedule)."""
import argparse
import json

import pytest

from distill.core.cli import duration
from distill.schedule import Schedule, TimeBudget, lr_at


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warmup_then_cosine_to_zero():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), (" 2M ", 120)])
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-5m", "ten minutes", "5d", ""])
def test_bad_durations_name_the_accepted_forms(text):
    with pytest.raises(argparse.ArgumentTypeError, match="300s, 10m or 1.5h"):
        duration(text)


def test_the_budget_plans_from_the_pace_after_the_first_logging_step():
    clock = FakeClock()
    budget = TimeBudget(100.0, clock=clock)
    clock.now = 30.0  # a slow first window (compilation): not part of the pace
    assert budget.plan(10) is None
    clock.now = 40.0  # 10 steps per second from here on
    assert budget.plan(110) == 110 + 600  # 60 s left at 10 steps/s
    assert not budget.expired()
    clock.now = 100.0
    assert budget.expired()


def test_a_resumed_run_counts_the_time_of_its_earlier_sessions():
    clock = FakeClock()
    budget = TimeBudget(100.0, used=70.0, clock=clock)
    budget.plan(0)
    clock.now = 10.0
    assert budget.plan(100) == 100 + 200  # 20 s left at 10 steps/s
    clock.now = 30.0
    assert budget.expired()


def test_the_schedule_follows_the_plan_and_decays_to_zero_where_the_budget_ends():
    clock = FakeClock()
    sched = Schedule(per_epoch=50, epochs=2, warmup_epochs=0.2, peak=1.0)
    sched.start_budget(TimeBudget(20.0, clock=clock))
    assert (sched.total, sched.warmup) == (100, 10)  # before any pace: --epochs
    clock.now = 5.0
    sched.tick(3, logging=False)  # no pace yet, and not a logging step: no anchor either
    assert sched.budget.anchor is None and sched.total == 100
    sched.tick(10, logging=True)  # the anchor
    clock.now = 6.0
    sched.tick(20, logging=False)  # 10 steps/s from here, 14 s left: planned after every step
    assert sched.total == 20 + 140 and sched.warmup == 10
    assert sched.lr(sched.total) == pytest.approx(0.0)
    clock.now = 20.0
    sched.tick(150, logging=False)
    assert sched.total == 150  # the budget is spent: the run ends at this step


def test_max_steps_caps_a_budgeted_plan():
    clock = FakeClock()
    sched = Schedule(per_epoch=50, epochs=2, warmup_epochs=1, peak=1.0, max_steps=60)
    sched.start_budget(TimeBudget(1000.0, clock=clock))
    sched.tick(1, logging=True)
    clock.now = 1.0
    sched.tick(11, logging=False)
    assert sched.total == 60 and sched.warmup == 50


@pytest.mark.testbed
def test_train_with_a_time_budget_stops_in_time_with_its_schedule_finished(cifar_small, resnet56_onnx, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "run"
    proc = run_cli("distill", "train", "--data", str(cifar_small / "train"), "--teacher", str(resnet56_onnx),
                   "--student", "mobilenetv3_large_100", "--batch-size", "16", "--queue-size", "64",
                   "--hidden-dim", "64", "--workers", "0", "--in-memory", "on", "--device", "cpu", "--log-every", "2",
                   "--epochs", "1000", "--warmup-epochs", "0.5", "--time-budget", "12s", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 < result["steps"] < 1000 * 5  # far fewer than --epochs asked for
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    peak = max(l["lr"] for l in lines)
    assert lines[-1]["lr"] < 0.5 * peak  # decayed: the plan, not --epochs, set the cosine's end
    assert lines[-1]["elapsed_s"] < 12.0 + 5.0
    assert json.loads((out / "config.json").read_text())["time_budget"] == 12.0
