"""Benchmark every backend of a student side by side.

Each backend runs in a fresh worker process (bench.worker). Timing runs are interleaved, A B C A B C ...,
for ``rounds`` rounds and each statistic is the median over rounds: on a shared or throttled machine a slow
window then hits every backend alike instead of one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.environment import contended, environment, load_average, runnable_others
from bench.harness import harness_overhead
from distill.core.deps import available
from distill.core.embeddings import FolderEmbeddings, bank_overlap, cosine_rows, knn_protocols, neighbour_overlap
from distill.core.errors import DataError, MissingDependencyError
from distill.core.log import log
from distill.core.images import scan_folder
from distill.core.layout import EXPORT_DIR, STUDENT_FILE
from distill.core.progress import progress
from distill.core.threads import usable_cpus
from export.backends import runtime_for
from export.formats import artifact_suffixes
from export.metadata import read_metadata
from export.reference import MANIFEST

WORKER = str(Path(__file__).with_name("worker.py"))  # started by file path: see _run_worker


@dataclass
class BenchConfig:
    targets: list[str]
    data: str | None = None  # images for end-to-end timing (and parity when no --val)
    train: str | None = None  # labelled kNN bank
    val: str | None = None  # labelled kNN queries
    train_limit: int = 5000
    val_limit: int = 1000
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    threads: int | None = None  # default: every usable core
    warmup_s: float = 1.0
    min_time_s: float = 2.0
    min_runs: int = 20
    rounds: int = 3
    device: str = "cpu"
    out: str | None = None  # default: bench/ inside the first target's folder (default_out)
    workers: int = 2
    cross_check: bool = False  # also run OpenVINO's benchmark_app on every OpenVINO artifact (bench.crosscheck)
    torch_variants: tuple[str, ...] = ("eager",)  # how the PyTorch student runs (export.backends.torch_variants)
    extra: dict[str, Any] = field(default_factory=dict)


def default_out(targets: list[str]) -> Path:
    """Where a report goes when --out is not given: ``bench/`` in the run (or export) folder named first, or
    beside the first artifact named; the report lives with what it measured."""
    first = Path(targets[0])
    return (first if first.is_dir() else first.parent) / "bench"


def expand_targets(targets: list[str], with_torch: bool = True) -> list[Path]:
    """A run folder means its student.pt plus every artifact exported from it (failed ones excluded); an export
    folder its artifacts. Without torch (``with_torch`` False: the deploy install) a run folder's student.pt is left
    out with a note, and a student.pt named on its own is an error naming the extra."""
    found: list[Path] = []
    for t in targets:
        p = Path(t).expanduser()
        if not p.exists():
            raise DataError(f"'{p}' does not exist; pass artifacts (.onnx, .xml, .engine), student.pt or run folders")
        if p.is_dir():
            if (p / STUDENT_FILE).is_file():
                if with_torch:
                    found.append(p / STUDENT_FILE)
                else:
                    log.warning(f"note: torch is not installed, so the PyTorch row of '{p / STUDENT_FILE}' is left "
                                "out (pip install 'edgedistill[train]' adds it); artifacts are checked against their "
                                "reference bundle")
            export_dir = p / EXPORT_DIR if (p / EXPORT_DIR).is_dir() else p
            found += sorted(f for f in export_dir.iterdir() if f.suffix in artifact_suffixes())
        else:
            if runtime_for(p) == "torch" and not with_torch:  # runtime_for: a clear error for .failed, unknown suffixes
                raise MissingDependencyError(f"'{p}' is a PyTorch student: benchmarking it needs the training stack, "
                                             "pip install 'edgedistill[train]'; or pass its export folder")
            found.append(p)
    unique = list(dict.fromkeys(f.resolve() for f in found))
    if not unique:
        raise DataError(f"nothing to benchmark in {', '.join(targets)}: no student.pt and no exported artifacts")
    return unique


def _label(path: Path) -> dict[str, str]:
    runtime = runtime_for(path)
    try:
        meta = read_metadata(path) if runtime != "torch" else None
    except Exception:  # an unreadable artifact: its worker reports why, the others go on
        meta = {"precision": "?"}
    precision = (meta or {}).get("precision", "fp32")
    return {"backend": runtime, "precision": precision, "artifact": str(path), "name": f"{runtime} {precision}",
            "key": str(path), "variant": None,
            "exported": meta is None or "parity" in meta}  # written by edgedistill export (sidecar-only: not)


def _torch_variants(labels: list[dict], variants: tuple[str, ...], device: str) -> list[dict]:
    """Each PyTorch student's extra rows (bench --torch): its eager fp32 row stays the reference, the other
    variants follow it, keyed 'student.pt#variant'."""
    from export.backends.torch_variants import parse_variant

    out = []
    for lab in labels:
        out.append(lab)
        if lab["backend"] != "torch":
            continue
        for v in variants:
            if v == "eager":
                continue
            _, precision = parse_variant(v, device)
            out.append({**lab, "precision": precision, "name": f"torch {v}", "key": f"{lab['artifact']}#{v}",
                        "variant": v})
    return out


def _reference_checkpoint(paths: list[Path]) -> Path | None:
    """The PyTorch student the artifacts came from: given directly, or recorded in their metadata."""
    for p in paths:
        if runtime_for(p) == "torch":
            return p
    for p in paths:
        try:
            src = ((read_metadata(p) or {}).get("source") or {}).get("checkpoint")
        except Exception:
            continue
        if src and Path(src).is_file():
            return Path(src).resolve()
    return None


def _run_worker(job: dict, work: Path, threads: int) -> dict:
    fd, path = tempfile.mkstemp(suffix=".json", dir=work)
    with os.fdopen(fd, "w") as f:
        json.dump(job, f)
    # the worker's runtime is its only pool: onnxruntime may spin for latency, as benchmark_app and trtexec do
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "EDGEDISTILL_PROGRESS": "0",
           "EDGEDISTILL_ORT_SPINNING": "1"}
    # by file path, not ``-m bench.worker``: ``-m`` puts the current folder first on sys.path, where a user's own
    # ``bench/`` folder would silently replace this package's worker
    proc = subprocess.run([sys.executable, WORKER, path], capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"worker crashed (exit {proc.returncode}): {tail}"}


def _time_rounds(cfg: BenchConfig, labels: list[dict], base: dict, work: Path, threads: int) -> tuple[dict, list]:
    """Interleaved rounds, A B C A B C ...: each label timed once a round in its own worker; with --cross-check,
    benchmark_app on each OpenVINO IR right after bench's timing of it (bench.crosscheck).
    -> (timings per label key, benchmark_app's results per round)."""
    from bench.crosscheck import round_jobs, run_round

    timings: dict[str, list[dict]] = {lab["key"]: [] for lab in labels}
    app_rounds: list[dict] = []
    bar = progress(total=cfg.rounds * len(labels), desc="latency", unit="run")
    for _ in range(cfg.rounds):
        app_rounds.append({})
        for lab in labels:
            job = {**base, "task": "timing", "artifact": lab["artifact"], "variant": lab["variant"]}
            timings[lab["key"]].append(_run_worker(job, work, threads))
            if cfg.cross_check:  # right after bench's own timing of the same IR: a pair in the same window
                jobs = round_jobs(lab, timings[lab["key"]][-1], cfg.batch_sizes)
                app_rounds[-1].update(run_round(jobs, threads, max(cfg.min_time_s, 1.0)))
            bar.update(1)
    bar.close()
    return timings, app_rounds


def _median(values: list[float]) -> float:
    return float(np.median(values))


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    threads = cfg.threads or usable_cpus()
    load_before, others_before = load_average(), runnable_others()
    with_torch = available("torch")
    paths = expand_targets(cfg.targets, with_torch)
    reference = _reference_checkpoint(paths) if with_torch else None
    if reference is not None and reference not in paths:
        paths.insert(0, reference)
    labels = _torch_variants([_label(p) for p in paths], cfg.torch_variants, cfg.device)
    images: list[str] = []
    if cfg.data or cfg.val:
        folder = scan_folder(cfg.data or cfg.val, 64)
        images = [str(folder.absolute(i)) for i in range(len(folder))]
    out = Path(cfg.out) if cfg.out else default_out(cfg.targets)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="edgedistill-bench-") as tmp:
        work = Path(tmp)
        base = {"device": cfg.device, "threads": threads, "batch_sizes": list(cfg.batch_sizes),
                "warmup_s": cfg.warmup_s, "min_time_s": cfg.min_time_s, "min_runs": cfg.min_runs, "images": images}
        timings, app_rounds = _time_rounds(cfg, labels, base, work, threads)
        others_after = runnable_others()
        size = next((t.get("img_size") for runs in timings.values() for t in runs if t.get("img_size")), 224)
        harness = harness_overhead(lambda job: _run_worker(job, work, threads), base, work, size)
        embeddings = _embeddings(cfg, labels, work, threads)
        gates = _gates(cfg, labels, work, threads, reference)

    env = environment(threads)
    env["load_average"] = {"before": load_before, "after": load_average(), "others_before": others_before,
                           "others_after": others_after}
    if contended(env["load_average"], threads):
        log.warning(f"note: the machine was busy during the benchmark ({others_before} -> {others_after} other "
                    f"runnable threads on average, load average {load_before} -> {env['load_average']['after']} on "
                    f"{threads} threads): latencies are not a quiet machine's")
    flops, params = _cost(reference)
    rows = _rows(cfg, labels, timings, embeddings, reference, flops, env, gates)
    student = {"checkpoint": str(reference) if reference else None, "flops_per_image": flops, "params": params}
    report = {"config": asdict(cfg), "environment": env, "student": student, "harness": harness,
              "rows": rows, "report_dir": str(out)}
    if cfg.cross_check:
        from bench.crosscheck import cross_check, offline_check, p50_per_round
        from bench.report import scenarios

        report["cross_check"] = cross_check(rows, app_rounds, p50_per_round(labels, timings, cfg.batch_sizes))
        report["cross_check_offline"] = offline_check(scenarios(report), rows, max(cfg.min_time_s, 2.0))
    from bench.report import write_reports

    write_reports(report, out)
    return report


def _embeddings(cfg: BenchConfig, labels: list[dict], work: Path, threads: int) -> dict[str, dict]:
    """Per backend: bank and query embeddings (or parity images when there is no labelled split)."""
    if cfg.train and cfg.val:
        spec = {"bank": {"dir": cfg.train, "limit": cfg.train_limit},
                "queries": {"dir": cfg.val, "limit": cfg.val_limit}}
    elif cfg.data or cfg.val:
        spec = {"queries": {"dir": cfg.data or cfg.val, "limit": min(cfg.val_limit, 200)}}
    else:
        return {}
    found = {}
    for lab in progress(labels, desc="accuracy", unit="backend"):
        d = work / f"emb{len(found)}"
        d.mkdir()
        res = _run_worker({"task": "embed", "artifact": lab["artifact"], "variant": lab["variant"],
                           "device": cfg.device, "threads": threads, "out": str(d), "workers": cfg.workers, **spec},
                          work, threads)
        if not res.get("ok"):
            found[lab["key"]] = {"error": res.get("error")}
            continue
        entry = {}
        for key in ("bank", "queries"):
            if (d / f"{key}.npy").is_file():
                labels_ = np.load(d / f"{key}_labels.npy")
                entry[key] = FolderEmbeddings(np.load(d / f"{key}.npy"), labels_ if labels_.size else None,
                                              np.arange(0), 0)
        found[lab["key"]] = entry
    return found


def _gates(cfg: BenchConfig, labels: list[dict], work: Path, threads: int, reference: Path | None) -> dict[str, dict]:
    """Per artifact, the parity gate run again here against the reference bundle its export wrote beside it
    (export.reference): what says that the artifact still agrees with PyTorch on this machine's runtime and CPU.
    An exported artifact without a bundle is refused when there is no PyTorch student to compare with either; a model
    from elsewhere (a sidecar JSON, no export metadata) has no gate to redo."""
    found = {}
    for lab in labels:
        if lab["backend"] == "torch" or not lab["exported"]:
            continue  # a model from elsewhere (a sidecar, no export metadata) never passed a gate: nothing to redo
        if not (Path(lab["artifact"]).parent / MANIFEST).is_file() and reference is not None:
            continue  # an export from before the bundle: compared with the PyTorch row instead
        res = _run_worker({"task": "parity", "artifact": lab["artifact"], "device": cfg.device, "threads": threads},
                          work, threads)
        found[lab["artifact"]] = res["parity"] if res.get("ok") else {"error": res.get("error")}
    return found


def _gate_columns(gate: dict | None) -> dict[str, Any]:
    if not gate:
        return {}
    if "error" in gate:
        return {"gate": "refused", "gate_reason": gate["error"]}
    return {"gate": "pass" if gate["passed"] else "fail", "gate_images": f"{gate['num_images']} {gate['images']}",
            "gate_min_cosine": gate["min_cosine"], "gate_mean_cosine": gate["mean_cosine"],
            "gate_overlap@10": gate["neighbour_overlap@10"], "gate_knn": gate.get("knn"),
            "gate_knn_reference": gate.get("knn_reference"), "gate_reason": gate.get("reason")}


def _cost(reference: Path | None) -> tuple[int | None, int | None]:
    if reference is None:
        return None, None
    from bench.flops import count_flops, count_params
    from distill.checkpoint import load_student

    loaded = load_student(reference)
    return count_flops(loaded.model, loaded.preprocess.input_size), count_params(loaded.model)


def _rows(cfg, labels, timings, embeddings, reference, flops, env, gates=None) -> list[dict]:
    ref_key = str(reference) if reference else None
    ref_emb = embeddings.get(ref_key, {}) if ref_key else {}
    ref_knn = None
    if "bank" in ref_emb and ref_emb["bank"].labels is not None:
        ref_knn = knn_protocols(ref_emb["bank"], ref_emb["queries"])["knn_top1"]
    rows = []
    for lab in labels:
        runs = timings[lab["key"]]
        good = [r for r in runs if r.get("ok")]
        acc = _accuracy(embeddings.get(lab["key"], {}), ref_emb, ref_knn)
        for bs in cfg.batch_sizes:
            row = {"backend": lab["backend"], "precision": lab["precision"], "batch_size": bs, "img_size": None,
                   "status": "error", "p50_ms": None, "p90_ms": None, "p99_ms": None, "p999_ms": None, "mean_ms": None,
                   "std_ms": None,
                   "images_per_s": None, "e2e_p50_ms": None, "peak_rss_mb": None, "size_mb": None,
                   **acc, **_gate_columns((gates or {}).get(lab["artifact"])), "artifact": lab["artifact"],
                   "variant": lab["variant"], "error": None}
            entries = [r["batches"].get(str(bs), {}) for r in good]
            if not good:
                row["error"] = runs[0].get("error") if runs else "not run"
            elif any("error" in e for e in entries):
                row["error"] = next(e["error"] for e in entries if "error" in e)
            else:
                infer = [e["infer"] for e in entries]
                p50 = _median([i["p50_ms"] for i in infer])
                row.update(status="ok", img_size=good[0]["img_size"], p50_ms=p50,
                           p90_ms=_median([i["p90_ms"] for i in infer]), p99_ms=_median([i["p99_ms"] for i in infer]),
                           p999_ms=(_median(p999) if (p999 := [i["p999_ms"] for i in infer if i.get("p999_ms")])
                                    else None),
                           mean_ms=_median([i["mean_ms"] for i in infer]), std_ms=_median([i["std_ms"] for i in infer]),
                           images_per_s=bs / (p50 / 1e3), peak_rss_mb=max(r["peak_rss_mb"] for r in good),
                           size_mb=good[0]["size_bytes"] / 1e6, rounds=len(good))
                e2e = [e["end_to_end"]["p50_ms"] for e in entries if "end_to_end" in e]
                row["e2e_p50_ms"] = _median(e2e) if e2e else None
                if flops:
                    row["floor_ms"] = flops * bs / (env["peak_gflops_fp32"] * 1e9) * 1e3
            if row["status"] == "ok" and acc.get("accuracy_error"):
                row["error"] = acc["accuracy_error"]
            if row.get("gate") == "refused" and row["status"] == "ok":  # no reference to judge it by
                row.update(status="error", error=row["gate_reason"])
            rows.append(row)
    torch_p50 = {r["batch_size"]: r["p50_ms"] for r in rows
                 if r["backend"] == "torch" and not r["variant"] and r["status"] == "ok"}
    for r in rows:
        if r["status"] == "ok" and torch_p50.get(r["batch_size"]):
            r["speedup_vs_torch"] = torch_p50[r["batch_size"]] / r["p50_ms"]
    return rows


def _accuracy(emb: dict, ref: dict, ref_knn: float | None) -> dict:
    acc: dict[str, Any] = {"knn_top1": None, "knn_delta": None, "min_cosine": None, "mean_cosine": None,
                           "neighbour_overlap@10": None}
    if "error" in emb:
        acc["accuracy_error"] = emb["error"]
        return acc
    q = emb.get("queries")
    if q is None:
        return acc
    if "bank" in emb and emb["bank"].labels is not None and q.labels is not None:
        acc["knn_top1"] = knn_protocols(emb["bank"], q)["knn_top1"]
        if ref_knn is not None:
            acc["knn_delta"] = acc["knn_top1"] - ref_knn
    rq = ref.get("queries")
    if rq is not None and rq.features.shape == q.features.shape:
        cos = cosine_rows(rq.features, q.features)
        acc["min_cosine"], acc["mean_cosine"] = float(cos.min()), float(cos.mean())
        if "bank" in emb and "bank" in ref:
            acc["neighbour_overlap@10"] = bank_overlap(ref["bank"].features, rq.features, emb["bank"].features,
                                                       q.features)
        else:
            acc["neighbour_overlap@10"] = neighbour_overlap(rq.features, q.features)
    return acc
