"""edgedistill.bench: latency, throughput, memory, size and accuracy parity of every backend, side by side.

    from bench import BenchConfig, run_bench, measure

The names are imported lazily (PEP 562), so that building the command-line parser imports no runtime.
"""
from distill.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "bench.runner": ("BenchConfig", "run_bench", "expand_targets"),
    "distill.core.timing": ("TimingStats", "measure", "sigma_clip", "summarize"),
})
