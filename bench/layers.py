"""``bench --profile ARTIFACT``: where one artifact's time goes, layer by layer, from its runtime's own profiler.

onnxruntime: the session's profiler (``SessionOptions.enable_profiling``), whose trace has one ``Node`` event per
kernel run with its operator type and the execution provider's kernel; OpenVINO: the per-node performance counters
(``PERF_COUNT``, ``InferRequest.get_profiling_info``), which also name the kernel implementation OpenVINO chose
(``jit_avx512_I8``, ``ref_f32``, ...). Either way the layers are summed over ``runs`` inferences of one batch and
sorted by time; the table groups them by operator type too. This is how a user sees why an int8 build is slow:
the time of its Quantize/Dequantize (or Reorder/Convert) layers, and which layers fell back to a reference kernel.
Profiling adds its own overhead: the per-layer times are for comparing layers, not a latency (use ``bench``).
"""
from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from distill.core.errors import ConfigError
from distill.core.preprocess import Preprocess


def _input(meta_size: int, batch: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, 3, meta_size, meta_size)).astype(np.float32)


def _onnxruntime_layers(path: Path, x: np.ndarray, runs: int, threads: int | None) -> list[dict]:
    import onnxruntime as ort

    from distill.core.threads import ort_session_options

    opts = ort_session_options(threads)
    with tempfile.TemporaryDirectory(prefix="edgedistill-profile-") as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(runs + 1):  # the first run (a warm-up) is profiled too: every sum is divided by the runs seen
            session.run(None, {name: x})
        trace = json.loads(Path(session.end_profiling()).read_text())
    seen = sum(1 for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run") or runs + 1
    rows: dict[tuple, float] = defaultdict(float)
    for event in trace:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            args = event.get("args", {})
            key = (event["name"].removesuffix("_kernel_time"), args.get("op_name", "?"), args.get("provider", ""))
            rows[key] += float(event.get("dur", 0))
    return [{"layer": layer, "type": op, "kernel": provider, "total_us": round(us * runs / seen, 1),
             "us_per_run": round(us / seen, 2)} for (layer, op, provider), us in rows.items()]


def _openvino_layers(path: Path, x: np.ndarray, runs: int, threads: int | None) -> list[dict]:
    import openvino as ov

    from export.backends.openvino_backend import cpu_config, reshaped

    core = ov.Core()
    model = core.read_model(str(path))
    model = reshaped(model, x.shape) or model  # as the backend runs it: compiled for this input's shape
    request = core.compile_model(model, "CPU", cpu_config(threads, PERF_COUNT="YES")).create_infer_request()
    request.infer({0: x})  # warm-up
    sums: dict[tuple, float] = defaultdict(float)
    for _ in range(runs):
        request.infer({0: x})
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                sums[(info.node_name, info.node_type, info.exec_type)] += info.real_time.total_seconds() * 1e6
    return [{"layer": layer, "type": op, "kernel": kernel, "total_us": round(us, 1),
             "us_per_run": round(us / max(runs, 1), 2)} for (layer, op, kernel), us in sums.items()]


PROFILERS = {"onnxruntime": _onnxruntime_layers, "openvino": _openvino_layers}


def profile_artifact(path: str | Path, batch: int = 1, runs: int = 50, threads: int | None = None) -> dict[str, Any]:
    """Per-layer and per-operator-type time of ``path`` over ``runs`` inferences of a batch of ``batch``."""
    from export.backends import runtime_for
    from export.metadata import read_metadata

    path = Path(path)
    runtime = runtime_for(path)
    if runtime not in PROFILERS:
        raise ConfigError(f"--profile reads onnxruntime's and OpenVINO's profilers; '{path.name}' runs on {runtime}: "
                          "profile its ONNX or OpenVINO export instead")
    meta = read_metadata(path) or {}
    size = Preprocess.from_dict(meta.get("preprocess") or meta).input_size  # an export's, or a sidecar's
    layers = sorted(PROFILERS[runtime](path, _input(size, batch), runs, threads), key=lambda r: -r["total_us"])
    total = sum(r["total_us"] for r in layers) or 1.0
    for r in layers:
        r["share"] = round(r["total_us"] / total, 4)
    by_type: dict[str, float] = defaultdict(float)
    for r in layers:
        by_type[r["type"]] += r["us_per_run"]
    return {"artifact": str(path), "runtime": runtime, "precision": meta.get("precision"), "batch": batch,
            "runs": runs, "threads": threads, "us_per_run": round(total / max(runs, 1), 2),
            "by_type": [{"type": t, "us_per_run": round(v, 2), "share": round(v * runs / total, 4)}
                        for t, v in sorted(by_type.items(), key=lambda tv: -tv[1])],
            "layers": layers}


def profile_markdown(p: dict[str, Any], top: int = 15) -> str:
    lines = [f"Profile of {Path(p['artifact']).name} ({p['runtime']}, {p['precision']}), batch {p['batch']}, "
             f"{p['runs']} runs: {p['us_per_run'] / 1000:.3f} ms per run in its layers (profiler on).", "",
             "| operator type | us per run | share |", "|---|---:|---:|"]
    lines += [f"| {t['type']} | {t['us_per_run']:.1f} | {100 * t['share']:.1f} % |" for t in p["by_type"][:top]]
    lines += ["", f"| layer (top {top}) | type | kernel | us per run | share |", "|---|---|---|---:|---:|"]
    lines += [f"| {r['layer'][:60]} | {r['type']} | {r['kernel']} | {r['us_per_run']:.1f} | {100 * r['share']:.1f} % |"
              for r in p["layers"][:top]]
    return "\n".join(lines) + "\n"
