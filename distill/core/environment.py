"""What a run ran on: library versions, the project's git commit (when run from a checkout) and the hardware,
recorded in a run's summary.json and every model card."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

LIBRARIES = ("edgedistill", "torch", "torchvision", "timm", "numpy", "onnx", "onnxruntime", "openvino", "faiss-cpu")


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def git_commit() -> dict[str, Any] | None:
    """The commit of the checkout this code runs from, and whether it has uncommitted changes; None elsewhere."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def hardware(device: str | None = None) -> dict[str, Any]:
    from distill.core.threads import usable_cpus

    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor() or None,
                            "cpus": os.cpu_count(), "usable_cpus": usable_cpus(), "system": platform.system()}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    torch = sys.modules.get("torch")  # only when the run imported it: the deploy side stays torch-free
    if torch is not None and device and str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_environment(device: str | None = None) -> dict[str, Any]:
    return {"versions": library_versions(), "git": git_commit(), "hardware": hardware(device),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
