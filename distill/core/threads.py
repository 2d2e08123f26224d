"""Thread pools sized to what the process may use, and that yield the core when they wait.

A 2-core machine shared with one busy process (another user's job, a CI neighbour) gives this process one
core. PyTorch's OpenMP pool (libgomp) and onnxruntime's intra-op pool, each sized to every core and each
spin-waiting at its barriers by default, then wait on threads that are not running: a SEED step with an ONNX
teacher measured here fell from 320 to 12 images/s beside one busy loop (docs/BENCHMARKS.md, "Training under
contention"). So, before torch is imported:

* the pool size is the CPUs this process may run on (affinity mask, cgroup v2 ``cpu.max`` quota), not the
  machine's core count, unless ``--threads`` says otherwise;
* OpenMP threads spin briefly, then sleep: ``GOMP_SPINCOUNT=1000`` for libgomp (PyTorch's OpenMP on Linux) and
  ``KMP_BLOCKTIME=1`` for Intel's. Measured against the alternatives: ``OMP_WAIT_POLICY=PASSIVE`` kept more
  under contention (61 %) but cost 11 % alone; ``GOMP_SPINCOUNT=10000`` cost nothing alone but kept 26 %; 1000
  kept 49 % and cost nothing alone. A user's own setting of any of these wins;
* onnxruntime sessions opened next to torch get the same size and no intra-op spinning.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
SPIN_COUNT = "1000"  # libgomp's spin iterations before a waiting thread sleeps (its default is 300,000)


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs allowed by a cgroup v2 quota (``"200000 100000"`` -> 2), or None when unlimited or unknown."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def configure_threads(threads: int | None = None) -> int:
    """Set the process's thread policy (see the module docstring); returns the pool size.

    Call it before torch is imported for the wait policy to take effect (the command line does); the pool
    size is applied either way.
    """
    n = threads or usable_cpus()
    if "OMP_WAIT_POLICY" not in os.environ:  # an explicit policy is the user's choice: leave the spin alone
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
        os.environ.setdefault("KMP_BLOCKTIME", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    os.environ["EDGEDISTILL_THREADS"] = str(n)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
    return n


def thread_count() -> int:
    """The pool size chosen by :func:`configure_threads` (else the usable CPUs)."""
    try:
        return max(1, int(os.environ["EDGEDISTILL_THREADS"]))
    except (KeyError, ValueError):
        return usable_cpus()


def ort_session_options(threads: int | None = None, spinning: bool | None = None):
    """onnxruntime SessionOptions with ``threads`` intra-op threads (default :func:`thread_count`), one
    inter-op thread, and intra-op spinning off unless asked (a session beside torch must not spin). The
    benchmark's workers, where onnxruntime is the only pool, ask for it through ``EDGEDISTILL_ORT_SPINNING=1``."""
    import onnxruntime as ort

    if spinning is None:
        spinning = os.environ.get("EDGEDISTILL_ORT_SPINNING") == "1"
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads or thread_count()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts
