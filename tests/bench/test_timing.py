"""Latency statistics on a backend with known delays (a fake clock, so the expected numbers are exact)."""
import numpy as np
import pytest

from bench.timing import measure, sigma_clip, summarize


class FakeClock:
    """A clock that only moves when the fake backend 'runs': each call costs the next delay in the list."""

    def __init__(self, delays_s):
        self.now, self.delays, self.calls = 0.0, list(delays_s), 0

    def __call__(self) -> float:
        return self.now

    def backend(self) -> None:
        self.now += self.delays[self.calls % len(self.delays)]
        self.calls += 1


def test_known_delays_give_exact_percentiles_and_throughput():
    clock = FakeClock([0.010])  # a backend that always takes 10 ms
    stats = measure(clock.backend, warmup_s=0.05, min_time_s=0.2, min_runs=5, clock=clock)
    assert stats.warmup_runs == 5  # 50 ms of warm-up at 10 ms a call
    assert stats.runs == 20  # 200 ms of timed runs
    assert stats.p50_ms == pytest.approx(10.0) and stats.p99_ms == pytest.approx(10.0) and stats.std_ms == pytest.approx(0)


def test_min_runs_wins_over_min_time_for_slow_backends():
    clock = FakeClock([0.5])
    stats = measure(clock.backend, warmup_s=0.0, min_time_s=0.1, min_runs=7, clock=clock)
    assert stats.runs == 7 and stats.warmup_runs == 1  # at least one warm-up call even with warmup_s=0


def test_outliers_are_clipped_before_percentiles():
    delays = [0.010] * 48 + [0.500, 0.900]  # two stalls, e.g. the OS scheduling something else
    stats = summarize(delays)
    assert stats.runs == 50 and stats.kept == 48
    assert stats.p99_ms == pytest.approx(10.0) and stats.mean_ms == pytest.approx(10.0)


def test_percentiles_of_a_spread_of_delays():
    delays = np.linspace(0.001, 0.100, 100)  # 1..100 ms, no outliers at 2 sigma
    stats = summarize(delays)
    assert stats.kept == 100
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.mean_ms == pytest.approx(50.5) and stats.std_ms == pytest.approx(np.std(np.linspace(1, 100, 100)))


def test_sync_runs_inside_the_timed_region():
    clock = FakeClock([0.002])
    stats = measure(lambda: None, warmup_s=0.0, min_time_s=0.0, min_runs=4, clock=clock, sync=clock.backend)
    assert stats.p50_ms == pytest.approx(2.0)  # the device's time is counted, as with cuda.synchronize


def test_sigma_clip_keeps_a_tight_sample_whole():
    x = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    assert len(sigma_clip(x)) == 5
