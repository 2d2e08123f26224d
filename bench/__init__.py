"""edgedistill.bench: latency, throughput, memory, size and accuracy parity of every backend, side by side.

    from bench import BenchConfig, run_bench, measure
"""
from bench.runner import BenchConfig, expand_targets, run_bench
from bench.timing import TimingStats, measure, sigma_clip, summarize

__all__ = ["BenchConfig", "run_bench", "expand_targets", "TimingStats", "measure", "sigma_clip", "summarize"]
