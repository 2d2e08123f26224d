"""Latency statistics: time-based warm-up, then timed runs until both a minimum time and a minimum count.

Outliers are clipped iteratively at mean +- 2 sigma (at most 3 passes), as Ultralytics' ProfileModels does,
before p50 / p90 / p99 / mean / std are taken.
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
    mean_ms: float
    std_ms: float
    runs: int  # timed runs
    kept: int  # runs left after outlier clipping
    warmup_runs: int

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


def summarize(times_s: list[float] | np.ndarray, warmup_runs: int = 0) -> TimingStats:
    ms = np.asarray(times_s, dtype=np.float64) * 1e3
    kept = sigma_clip(ms)
    return TimingStats(p50_ms=float(np.percentile(kept, 50)), p90_ms=float(np.percentile(kept, 90)),
                       p99_ms=float(np.percentile(kept, 99)), mean_ms=float(kept.mean()), std_ms=float(kept.std()),
                       runs=len(ms), kept=len(kept), warmup_runs=warmup_runs)


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
