"""Latency statistics: time-based warm-up, then timed runs until both a minimum time and a minimum count.

Percentiles are raw, as OpenVINO's benchmark_app, trtexec and MLPerf's LoadGen report them: p50, p90, p99, and
p99.9 once there are at least 1,000 runs (below that it would be the maximum under another name). The tail is the
point of a p99: nothing is clipped before the percentiles. Only the *trimmed mean* (``mean_ms``, ``std_ms``)
drops outliers at mean +- 2 sigma (at most 3 passes, as Ultralytics' ProfileModels does); ``raw_mean_ms`` keeps
them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass
class TimingStats:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float  # trimmed: outliers beyond 2 sigma dropped
    std_ms: float  # of the trimmed sample
    runs: int  # timed runs
    kept: int  # runs left in the trimmed mean
    warmup_runs: int
    p999_ms: float | None = None  # with at least P999_MIN_RUNS runs
    max_ms: float = 0.0
    raw_mean_ms: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def sigma_clip(values: np.ndarray, sigma: float = 2.0, max_iters: int = 3) -> np.ndarray:
    """Drop values outside mean +- sigma * std, repeatedly (at most ``max_iters`` passes)."""
    kept = np.asarray(values, dtype=np.float64)
    for _ in range(max_iters):
        mean, std = kept.mean(), kept.std()
        inside = kept[(kept >= mean - sigma * std) & (kept <= mean + sigma * std)]
        if len(inside) == len(kept) or len(inside) < 3:
            break
        kept = inside
    return kept


P999_MIN_RUNS = 1000


def summarize(times_s: list[float] | np.ndarray, warmup_runs: int = 0) -> TimingStats:
    """Raw percentiles of all runs; the trimmed mean and std of the 2-sigma-clipped runs."""
    ms = np.asarray(times_s, dtype=np.float64) * 1e3
    kept = sigma_clip(ms)
    pct = lambda q: float(np.percentile(ms, q))  # noqa: E731
    return TimingStats(p50_ms=pct(50), p90_ms=pct(90), p99_ms=pct(99), mean_ms=float(kept.mean()),
                       std_ms=float(kept.std()), runs=len(ms), kept=len(kept), warmup_runs=warmup_runs,
                       p999_ms=pct(99.9) if len(ms) >= P999_MIN_RUNS else None, max_ms=float(ms.max()),
                       raw_mean_ms=float(ms.mean()))


def measure(fn: Callable[[], object], warmup_s: float = 1.0, min_time_s: float = 2.0, min_runs: int = 20,
            sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter,
            max_runs: int = 100_000) -> TimingStats:
    """Time ``fn()``; ``sync`` (e.g. ``torch.cuda.synchronize``) runs inside the timed region after each call."""
    sync = sync or (lambda: None)
    start, warm = clock(), 0
    while clock() - start < warmup_s or warm == 0:
        fn()
        sync()
        warm += 1
    times: list[float] = []
    begin = clock()
    while (clock() - begin < min_time_s or len(times) < min_runs) and len(times) < max_runs:
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return summarize(times, warm)
