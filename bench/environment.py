"""The machine a benchmark ran on: CPU model and flags, cores, memory, library versions, peak compute."""
from __future__ import annotations

import os
import platform
import time
from functools import lru_cache

from export.metadata import versions

INTERESTING_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "avx512_bf16",
                     "f16c")


def cpu_info() -> dict:
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": model, "flags": sorted(f for f in INTERESTING_FLAGS if f in flags),
            "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 1e6, 1)
    except OSError:
        return None
    return None


@lru_cache(maxsize=None)
def peak_gflops(threads: int, n: int = 1024, seconds: float = 1.0) -> float:
    """Measured fp32 peak of this machine: the best rate of n x n matrix products over ``seconds``, with torch's
    ``threads`` threads where torch is installed, else with numpy's BLAS (the deploy install has no torch; its
    thread count is what OMP_NUM_THREADS gave it)."""
    try:
        import torch
    except ImportError:
        import numpy as np

        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
        return _best_rate(lambda: a @ b, n, seconds)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        return _best_rate(lambda: a @ b, n, seconds)
    finally:
        torch.set_num_threads(previous)


def _best_rate(matmul, n: int, seconds: float) -> float:
    matmul()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        matmul()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS does not say)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def runnable_others(samples: int = 20, interval_s: float = 0.02) -> float | None:
    """Mean number of runnable threads besides the reader over ``samples`` reads of /proc/loadavg's fourth field:
    what else wants a CPU right now. The load averages trail the last minutes, so a benchmark that follows other
    work of the same pipeline (``make demo``'s exports) would look contended by its own past. None off Linux."""
    counts = []
    try:
        for _ in range(samples):
            with open("/proc/loadavg") as f:
                counts.append(max(int(f.read().split()[3].split("/")[0]) - 1, 0))
            time.sleep(interval_s)
    except (OSError, ValueError, IndexError):
        return None
    return round(sum(counts) / len(counts), 2)


def contended(load: dict, threads: int) -> bool:
    """Whether other work shared the CPUs. With ``others_before`` / ``others_after`` (``runnable_others`` just
    before and just after the timing): at least half a CPU's worth of other runnable threads at either end.
    Without them (off Linux): a 1-minute load above half the benchmark's threads before the run, or above its
    threads + 0.5 after (which includes the benchmark itself)."""
    others = [v for v in (load.get("others_before"), load.get("others_after")) if v is not None]
    if others:
        return max(others) >= 0.5
    before, after = load.get("before"), load.get("after")
    return bool(before and before[0] > 0.5 * threads) or bool(after and after[0] > threads + 0.5)


def environment(threads: int) -> dict:
    return {"cpu": cpu_info(), "memory_gb": memory_gb(), "platform": platform.platform(), "threads": threads,
            "versions": versions(), "peak_gflops_fp32": round(peak_gflops(threads), 1)}
