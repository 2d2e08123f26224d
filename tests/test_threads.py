"""The thread policy: pools sized to the CPUs the process may use, passive waiting, no onnxruntime spinning."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.threads import cgroup_cpu_limit, ort_session_options, usable_cpus

ROOT = Path(__file__).resolve().parents[1]


def test_cgroup_quota_is_read_and_rounded_up(tmp_path):
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert cgroup_cpu_limit(f) == 2
    f.write_text("max 100000\n")
    assert cgroup_cpu_limit(f) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_the_thread_count_honours_the_affinity_mask():
    """A process pinned to one CPU (taskset, a container's cpuset) gets a pool of one, not the core count."""
    code = ("import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from distill.core.threads import configure_threads, usable_cpus; n = configure_threads(); "
            "import torch; print(usable_cpus(), n, torch.get_num_threads(), os.environ['GOMP_SPINCOUNT'])")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    assert out.stdout.split() == ["1", "1", "1", "1000"]


def test_an_explicit_thread_count_and_a_users_wait_policy_win():
    code = ("import os; os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'; from distill.core.threads import configure_threads; "
            "n = configure_threads(1); import torch; "
            "print(n, torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'], os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    assert out.stdout.split() == ["1", "1", "ACTIVE", "None"]
    assert usable_cpus() >= 1


def test_onnxruntime_sessions_do_not_spin_unless_asked(monkeypatch):
    monkeypatch.delenv("EDGEDISTILL_ORT_SPINNING", raising=False)
    opts = ort_session_options(2)
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("EDGEDISTILL_ORT_SPINNING", "1")
    assert ort_session_options(2).get_session_config_entry("session.intra_op.allow_spinning") == "1"
