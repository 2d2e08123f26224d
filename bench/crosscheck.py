"""``bench --cross-check``: OpenVINO's own ``benchmark_app`` on the same IR, in the same run, beside this tool.

A latency figure is only as good as the harness that took it. OpenVINO ships ``benchmark_app`` (the
``openvino`` package's console script), the number users compare with; running it on every OpenVINO artifact
the bench measured, at the same batch sizes and thread count, shows whether this tool's Python loop adds
overhead or measures something else.

benchmark_app is run the way bench's OpenVINO backend compiles the model (export/backends/openvino_backend.py):
one stream, ``-nthreads`` = bench's threads, synchronous requests (one at a time, as bench's timing loop),
``-infer_precision f32`` (the backend's ``INFERENCE_PRECISION_HINT``; without it a bf16-capable CPU runs an
fp32 IR in bf16), the static input shape ``[batch, 3, S, S]`` (the backend too compiles each batch size reshaped
to it: the dynamic-batch model was what made bench read up to 2.6x benchmark_app before) and random inputs
(benchmark_app's "inference only" mode, as bench's timing on a ready batch). Its median latency is compared with
bench's p50. ``-hint none`` is benchmark_app's rule for taking ``-nstreams``/``-nthreads``; the compiled model
still reports the LATENCY hint the backend sets.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

_UNITS = {"ms": 1.0, "us": 1e-3, "s": 1e3}
_LINE = re.compile(r"^\[ INFO \]\s+(Median|Average|Min|Max):\s+([0-9.]+)\s*(ms|us|s)\s*$")
NOT_FOUND = "benchmark_app not found (it comes with the openvino package: pip install 'edgedistill[openvino]')"
_THROUGHPUT = re.compile(r"^\[ INFO \]\s+Throughput:\s+([0-9.]+)\s*FPS")


def benchmark_app() -> str | None:
    """Path of the benchmark_app script installed beside this Python (the openvino package's), else on PATH."""
    here = Path(sys.executable).with_name("benchmark_app")
    return str(here) if here.is_file() else shutil.which("benchmark_app")


def command(app: str, xml: str, batch: int, img_size: int, threads: int, seconds: float,
            offline: bool = False) -> list[str]:
    """benchmark_app's command line: bench's single-request setting, or (``offline``) OpenVINO's own offline
    scenario: the THROUGHPUT hint, asynchronous requests, streams and requests chosen by OpenVINO."""
    base = [app, "-m", xml, "-d", "CPU", "-shape", f"[{batch},3,{img_size},{img_size}]", "-infer_precision", "f32",
            "-t", str(max(1, round(seconds)))]
    if offline:
        return base + ["-hint", "throughput", "-api", "async"]
    return base + ["-hint", "none", "-nstreams", "1", "-nthreads", str(threads), "-api", "sync"]


def parse_output(text: str) -> dict:
    """benchmark_app's summary lines -> {"median_ms", "mean_ms", "min_ms", "max_ms", "throughput"} (images/s).

    Raises ValueError when the median or the throughput is missing (benchmark_app failed or changed format)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if m := _LINE.match(line.strip()):
            key = {"Median": "median_ms", "Average": "mean_ms", "Min": "min_ms", "Max": "max_ms"}[m.group(1)]
            found[key] = float(m.group(2)) * _UNITS[m.group(3)]
        elif m := _THROUGHPUT.match(line.strip()):
            found["throughput"] = float(m.group(1))
    if "median_ms" not in found or "throughput" not in found:
        raise ValueError("no 'Median' latency or 'Throughput' line in benchmark_app's output")
    return found


def run_one(app: str, xml: str, batch: int, img_size: int, threads: int, seconds: float,
            offline: bool = False) -> dict:
    cmd = command(app, xml, batch, img_size, threads, seconds, offline)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "benchmark_app did not finish", "command": " ".join(cmd)}
    try:
        return {**parse_output(proc.stdout), "command": " ".join(cmd)}
    except ValueError as exc:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        return {"error": f"{exc} (exit {proc.returncode}: {tail[0][:200]})", "command": " ".join(cmd)}


def round_jobs(label: dict, timing: dict, batch_sizes) -> list[tuple[str, int, int]]:
    """(IR, batch size, image size) per batch size bench just timed for an OpenVINO artifact (``timing``, its
    worker's result this round): what benchmark_app runs next; none for other runtimes or a failed timing."""
    if label["backend"] != "openvino" or not timing.get("ok") or not timing.get("img_size"):
        return []
    return [(label["artifact"], bs, timing["img_size"]) for bs in batch_sizes
            if "infer" in (timing.get("batches") or {}).get(str(bs), {})]


def run_round(jobs: list[tuple[str, int, int]], threads: int, seconds: float, app: str | None = None) -> dict:
    """One benchmark_app run per job, in the same round as bench's own timing of it (so a slow window of a shared
    machine hits both tools): {"IR|batch": result}."""
    app = app or benchmark_app()
    if app is None:
        return {f"{xml}|{bs}": {"error": NOT_FOUND} for xml, bs, _ in jobs}
    return {f"{xml}|{bs}": run_one(app, xml, bs, size, threads, seconds) for xml, bs, size in jobs}


def p50_per_round(labels: list[dict], timings: dict[str, list[dict]], batch_sizes) -> dict[str, list[float]]:
    """bench's own p50 of each (artifact, batch size) in each round: {"IR|batch": [ms, ...]}, paired with
    benchmark_app's results of the same rounds by :func:`cross_check`."""
    out = {}
    for lab in labels:
        for bs in batch_sizes:
            batches = [(t.get("batches") or {}).get(str(bs), {}) for t in timings[lab["key"]]]
            # None keeps a failed round in its place, so that round i still pairs with benchmark_app's round i
            out[f"{lab['artifact']}|{bs}"] = [b["infer"]["p50_ms"] if "infer" in b else None for b in batches]
    return out


def _spread(values: list[float | None]) -> float | None:
    values = [v for v in values if v]
    return max(values) / min(values) if values else None


def cross_check(rows: list[dict], rounds: list[dict], per_round_p50: dict[str, list[float]]) -> list[dict]:
    """Per measured OpenVINO (artifact, batch size) row: the median over rounds of benchmark_app's median beside
    bench's p50 (itself the median over the same rounds). ``ratio`` is the median over rounds of the paired ratio
    (bench's p50 over benchmark_app's median, taken seconds apart, so that a slow window of a shared machine hits
    both); each tool's spread over the rounds (max / min) says how repeatable the machine was."""
    out = []
    for r in rows:
        if r["backend"] != "openvino" or r["status"] != "ok" or not r.get("img_size"):
            continue
        key = f"{r['artifact']}|{r['batch_size']}"
        entry = {"artifact": r["artifact"], "precision": r["precision"], "batch_size": r["batch_size"],
                 "bench_p50_ms": r["p50_ms"], "bench_images_per_s": r["images_per_s"],
                 "bench_spread": _spread(per_round_p50.get(key, []))}
        results = [rd.get(key) for rd in rounds]
        ours = per_round_p50.get(key, [])
        good = [(x, ours[i] if i < len(ours) else None) for i, x in enumerate(results) if x and "error" not in x]
        if not good:
            entry["error"] = next((x["error"] for x in results if x), "benchmark_app was not run")
        else:
            medians = [x["median_ms"] for x, _ in good]
            entry.update(median_ms=float(np.median(medians)), rounds=len(good), app_spread=_spread(medians),
                         throughput=float(np.median([x["throughput"] for x, _ in good])), command=good[0][0]["command"])
            paired = [p50 / x["median_ms"] for x, p50 in good if p50]
            # the median of each round's ratio (the two tools measured seconds apart), else the ratio of medians
            entry["ratio"] = float(np.median(paired)) if paired else entry["bench_p50_ms"] / entry["median_ms"]
            entry["ratio_of_medians"] = entry["bench_p50_ms"] / entry["median_ms"]
        out.append(entry)
    return out


def offline_check(scenarios: list[dict], rows: list[dict], seconds: float, app: str | None = None) -> list[dict]:
    """Per OpenVINO artifact, OpenVINO's offline scenario (THROUGHPUT hint, async requests, at bench's best
    batch size) beside bench's offline figure (the best images/s of one synchronous request)."""
    app = app or benchmark_app()
    sizes = {r["artifact"]: r["img_size"] for r in rows if r["status"] == "ok" and r.get("img_size")}
    out = []
    for s in scenarios:
        if s["backend"] != "openvino" or s["artifact"] not in sizes:
            continue
        entry = {"artifact": s["artifact"], "precision": s["precision"], "batch_size": s["offline_batch_size"],
                 "bench_images_per_s": s["offline_images_per_s"]}
        if app is None:
            entry["error"] = NOT_FOUND
        else:
            entry.update(run_one(app, s["artifact"], s["offline_batch_size"], sizes[s["artifact"]], 0, seconds,
                                 offline=True))
        out.append(entry)
    return out


def offline_table(entries: list[dict]) -> str:
    lines = ["| artifact | batch | bench offline images/s (1 sync request) | benchmark_app THROUGHPUT hint images/s "
             "(async) |", "|---|---:|---:|---:|"]
    for e in entries:
        theirs = f"error: {e['error']}" if "error" in e else f"{e['throughput']:.0f}"
        lines.append(f"| {Path(e['artifact']).name} | {e['batch_size']} | {e['bench_images_per_s']:.0f} | {theirs} |")
    return "\n".join(lines)


def cross_check_table(entries: list[dict]) -> str:
    lines = ["| artifact | batch | bench p50 ms | benchmark_app median ms | bench / benchmark_app | spread over rounds "
             "(bench / benchmark_app) | bench images/s | benchmark_app images/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v: f"{v:.2f}x" if v else "-"  # noqa: E731
    for e in entries:
        name = Path(e["artifact"]).name
        if "error" in e:
            lines.append(f"| {name} | {e['batch_size']} | {e['bench_p50_ms']:.3f} | error: {e['error']} | | | | |")
            continue
        lines.append(f"| {name} | {e['batch_size']} | {e['bench_p50_ms']:.3f} | {e['median_ms']:.3f} | "
                     f"{e['ratio']:.2f} | {fmt(e.get('bench_spread'))} / {fmt(e.get('app_spread'))} | "
                     f"{e['bench_images_per_s']:.0f} | {e['throughput']:.0f} |")
    return "\n".join(lines)
