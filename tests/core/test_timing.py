"""Latency statistics on a backend with known delays (a fake clock, so the expected numbers are exact)."""
import numpy as np
import pytest

from distill.core.timing import measure, sigma_clip, summarize


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


def test_raw_percentiles_see_planted_outliers_and_only_the_mean_is_trimmed():
    delays = [0.010] * 97 + [0.500, 0.700, 0.900]  # three stalls, e.g. the OS scheduling something else
    stats = summarize(delays)
    assert stats.runs == 100 and stats.kept == 97
    assert stats.p50_ms == pytest.approx(10.0) and stats.p90_ms == pytest.approx(10.0)
    assert stats.p99_ms == pytest.approx(np.percentile(np.array(delays) * 1e3, 99)) and stats.p99_ms > 500
    assert stats.max_ms == pytest.approx(900.0) and stats.p999_ms is None  # too few runs for a p99.9
    assert stats.mean_ms == pytest.approx(10.0) and stats.raw_mean_ms == pytest.approx(np.mean(delays) * 1e3)


def test_p999_needs_a_thousand_runs():
    delays = [0.001] * 998 + [0.050, 0.090]
    stats = summarize(delays)
    assert stats.p999_ms == pytest.approx(np.percentile(np.array(delays) * 1e3, 99.9)) and stats.p999_ms > 40


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
