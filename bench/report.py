"""Benchmark reports: report.json (everything, with the resolved config), report.csv, report.md (a table in
the style of Ultralytics' benchmark) and latency_vs_accuracy.png. All written atomically."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from distill.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

CSV_COLUMNS = ("backend", "precision", "batch_size", "img_size", "status", "p50_ms", "p90_ms", "p99_ms", "p999_ms",
               "mean_ms", "std_ms", "images_per_s", "e2e_p50_ms", "speedup_vs_torch", "floor_ms", "peak_rss_mb",
               "size_mb", "knn_top1", "knn_delta", "min_cosine", "mean_cosine", "neighbour_overlap@10", "gate",
               "gate_images", "gate_min_cosine", "gate_mean_cosine", "gate_overlap@10", "gate_knn",
               "gate_knn_reference", "gate_reason", "artifact", "variant", "error")


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def who(row: dict) -> str:
    """The backend column: the runtime, and for a PyTorch variant its mode ('torch (cudagraphs)')."""
    variant = row.get("variant")
    return f"{row['backend']} ({variant.split('-')[0]})" if variant else row["backend"]


def _group(row: dict) -> tuple:
    return row["artifact"], row.get("variant")


def markdown_table(report: dict) -> str:
    """One line per backend: format, precision, status, size, kNN top-1, p50 at batch 1, images/s."""
    rows = report["rows"]
    sizes = sorted({r["batch_size"] for r in rows})
    b1 = min(sizes)
    bmax = max(sizes)
    lines = [f"| backend | precision | status | size MB | kNN top-1 | kNN delta | min cos | p50 ms (b{b1}) | "
             f"x torch (b{b1}) | p50 ms (b{bmax}) | images/s (b{bmax}) | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_artifact: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        by_artifact.setdefault(_group(r), {})[r["batch_size"]] = r
    for per_bs in by_artifact.values():
        first, last = per_bs.get(b1, {}), per_bs.get(bmax, {})
        ref = first or last
        status = "✅" if ref.get("status") == "ok" else f"❌ {ref.get('error') or ''}".strip()
        lines.append("| " + " | ".join([
            who(ref), ref["precision"], status, _fmt(ref.get("size_mb"), 1), _fmt(ref.get("knn_top1"), 4),
            _fmt(ref.get("knn_delta"), 4), _fmt(ref.get("min_cosine"), 4), _fmt(first.get("p50_ms")),
            _fmt(first.get("speedup_vs_torch")), _fmt(last.get("p50_ms")), _fmt(last.get("images_per_s"), 0),
            _fmt(ref.get("peak_rss_mb"), 0)]) + " |")
    return "\n".join(lines)


def gate_table(report: dict) -> str | None:
    """The export's parity verdicts, measured again on this machine against each artifact's reference bundle
    (bench.runner._gates), beside the batch-1 latency; None when no artifact had a bundle."""
    rows = [r for r in report["rows"] if r.get("gate")]
    if not rows:
        return None
    b1 = min(r["batch_size"] for r in rows)
    lines = ["| backend | precision | images | worst cos | mean cos | overlap@10 | kNN export -> here | gate | "
             f"p50 ms (b{b1}) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["batch_size"] != b1:
            continue
        knn = (f"{100 * r['gate_knn_reference']:.1f} -> {100 * r['gate_knn']:.1f}"
               if r.get("gate_knn") is not None else "-")
        verdict = {"pass": "✅ pass", "fail": f"❌ fail: {r.get('gate_reason')}",
                   "refused": f"❌ refused: {r.get('gate_reason')}"}[r["gate"]]
        lines.append("| " + " | ".join([r["backend"], r["precision"], r.get("gate_images") or "-",
                                        _fmt(r.get("gate_min_cosine"), 6), _fmt(r.get("gate_mean_cosine"), 6),
                                        _fmt(r.get("gate_overlap@10"), 3), knn, verdict, _fmt(r.get("p50_ms"))]) + " |")
    return "\n".join(lines)


def scenarios(report: dict) -> list[dict]:
    """Per artifact, the two MLPerf inference scenarios a CPU deployment meets: single-stream (one image at a time,
    judged by its 90th-percentile latency) and offline (all images at hand, judged by throughput: the best
    images/s over the measured batch sizes)."""
    by_artifact: dict[tuple, list[dict]] = {}
    for r in report["rows"]:
        if r["status"] == "ok":
            by_artifact.setdefault(_group(r), []).append(r)
    out = []
    for rows in by_artifact.values():
        one = next((r for r in rows if r["batch_size"] == 1), None)
        best = max(rows, key=lambda r: r["images_per_s"] or 0)
        out.append({"backend": who(rows[0]), "precision": rows[0]["precision"], "artifact": rows[0]["artifact"],
                    "single_stream_p90_ms": one["p90_ms"] if one else None,
                    "offline_images_per_s": best["images_per_s"], "offline_batch_size": best["batch_size"]})
    return out


def scenarios_table(report: dict) -> str:
    lines = ["| backend | precision | single-stream p90 ms (batch 1) | offline images/s | at batch |",
             "|---|---|---|---|---|"]
    for s in report.get("scenarios") or scenarios(report):
        lines.append(f"| {s['backend']} | {s['precision']} | {_fmt(s['single_stream_p90_ms'])} | "
                     f"{_fmt(s['offline_images_per_s'], 0)} | {s['offline_batch_size']} |")
    return "\n".join(lines)


def _load(env: dict) -> str:
    load = env.get("load_average") or {}
    fmt = lambda v: f"{v[0]:.2f}" if v else "n/a"  # noqa: E731
    text = f"{fmt(load.get('before'))} / {fmt(load.get('after'))}"
    if load.get("others_before") is not None:
        text += f"; other runnable threads {load['others_before']} / {load.get('others_after')}"
    return text


def _harness_line(harness: dict | None) -> list[str]:
    """The benchmark's own per-call cost (bench.harness), under the table."""
    if not harness:
        return []
    if not harness.get("measured"):
        return [f"Harness overhead: not measured ({harness.get('why', 'the empty model failed')}).", ""]
    per = "; ".join(f"{runtime} " + ", ".join(f"batch {bs}: {ms:.4f} ms" for bs, ms in by_batch.items()
                                                if ms is not None)
                    for runtime, by_batch in harness["p50_ms"].items())
    return [f"Harness overhead (p50 of an empty model, {harness['model']}, through the same path): {per}. "
            "Inputs and outputs are bound once per batch size (onnxruntime IOBinding, OpenVINO shared input "
            "memory, each shape compiled static), so a row's p50 is the model's call, as benchmark_app and trtexec "
            "time it.", ""]


def render_markdown(report: dict) -> str:
    env, student = report["environment"], report["student"]
    cpu = env["cpu"]
    flops = student.get("flops_per_image")
    head = [f"# Benchmark: {student.get('checkpoint') or 'artifacts'}", "",
            f"Machine: {cpu['model']}, {cpu['usable_cores']} usable cores ({', '.join(cpu['flags'])}), "
            f"{env['threads']} threads, measured fp32 peak {env['peak_gflops_fp32']} GFLOP/s. "
            f"Load average before/after: {_load(env)}.",
            f"Student: {_fmt(student.get('params'), 0)} parameters, "
            f"{flops / 1e6:.1f} MFLOPs per image." if flops else "", "",
            markdown_table(report), "", *_harness_line(report.get("harness"))]
    gates = gate_table(report)
    if gates:
        head += ["Parity gate on this machine: each artifact's embeddings of its reference bundle (the images the "
                 "export gated it on) against PyTorch's, with the export's tolerances (export.reference):", "",
                 gates, ""]
    head += ["Scenarios, in MLPerf inference's terms: single-stream (one image at a time, its p90 latency) and "
            "offline (every image at hand, the best throughput over the measured batch sizes):", "",
            scenarios_table(report), "",
            "p50/p90/p99 are medians over interleaved rounds of per-call latency on a ready batch "
            "(raw percentiles, as benchmark_app and trtexec report them; p99.9 from 1,000 runs; the mean is trimmed at "
            "2 sigma); end-to-end latency (decode + preprocess + infer) is in report.csv."]
    head += cross_check_sections(report)
    return "\n".join(head) + "\n"


def cross_check_sections(report: dict) -> list[str]:
    """Markdown lines of ``bench --cross-check``'s two tables (benchmark_app beside bench), where measured."""
    from bench.crosscheck import cross_check_table, offline_table

    lines = []
    if report.get("cross_check"):
        lines += ["", "Cross-check: OpenVINO's benchmark_app on the same IR, same batch and threads, synchronous, one "
                  "stream, f32 inference precision, the input shape static, run right after bench's own timing of the "
                  "IR in every round. Medians over rounds; the ratio is the median of the rounds' paired ratios; the "
                  "spread (slowest / fastest round) is how repeatable this machine was:", "",
                  cross_check_table(report["cross_check"])]
    if report.get("cross_check_offline"):
        lines += ["", "Offline, OpenVINO's way: benchmark_app with the THROUGHPUT hint (asynchronous requests, "
                  "streams chosen by OpenVINO) at bench's best batch size:", "",
                  offline_table(report["cross_check_offline"])]
    return lines


def write_csv(report: dict, path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in report["rows"]:
        w.writerow({k: r.get(k) for k in CSV_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def plot(report: dict, path: Path) -> bool:
    """p50 latency at the smallest batch against kNN top-1 (or min cosine), one point per backend and precision."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    if not rows:
        return False
    b1 = min(r["batch_size"] for r in rows)
    rows = [r for r in rows if r["batch_size"] == b1]
    metric = "knn_top1" if any(r["knn_top1"] is not None for r in rows) else "min_cosine"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    markers = "osD^vP*Xh<>"
    drawn = [r for r in rows if r[metric] is not None]
    if not drawn:  # no images to compare on: nothing to plot against latency
        plt.close(fig)
        return False
    for i, r in enumerate(drawn):  # one legend entry per point: labels never sit on each other (close backends)
        ax.scatter(r["p50_ms"], r[metric], s=50, marker=markers[i % len(markers)], alpha=0.85,
                   label=f"{who(r)} {r['precision']} ({r['p50_ms']:.2f} ms)")
    latencies = [r["p50_ms"] for r in drawn]
    if latencies and max(latencies) > 8 * min(latencies):  # PyTorch eager next to the runtimes: spread them out
        ax.set_xscale("log")
        from matplotlib.ticker import FormatStrFormatter

        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel(f"p50 latency, batch {b1} (ms)")
    ax.set_ylabel("weighted kNN top-1" if metric == "knn_top1" else "min cosine vs PyTorch")
    ax.set_title("latency vs accuracy")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def write_reports(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {"json": str(out / "report.json"), "csv": str(out / "report.csv"), "md": str(out / "report.md")}
    report["scenarios"] = scenarios(report)
    if plot(report, out / "latency_vs_accuracy.png"):
        report["files"]["plot"] = str(out / "latency_vs_accuracy.png")
    write_csv(report, out / "report.csv")
    atomic_write_text(out / "report.md", render_markdown(report))
    atomic_write_json(out / "report.json", report)
