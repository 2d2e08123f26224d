"""Benchmark backends side by side: latency (p50/p90/p99), throughput, peak memory, size, and accuracy parity
(embedding cosine and weighted-kNN top-1 against the PyTorch student).

A run folder means its student.pt plus every artifact exported from it; an export folder copied to a device (no
torch needed) means its artifacts, each checked against the reference bundle the export wrote beside it: the
parity gate again, on this machine's runtime and CPU (exit 3 when an artifact fails it here). Each backend runs in
its own process;
rounds are interleaved (A B C A B C ...) and medians reported, so a slow window of the machine hits every
backend alike.

Example:
  edgedistill bench runs/seed --train cifar10/train --val cifar10/test --batch-sizes 1,8 --out runs/seed/bench
"""
from __future__ import annotations

import argparse

from distill.core.cli import add_json_flag, nonnegative_float, positive_float, positive_int, positive_ints
from export.backends.torch_variants import parse_variant, torch_variants

HELP = "benchmark latency, throughput, memory and accuracy of every backend"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="ARTIFACT_OR_RUN_DIR")
    p.add_argument("--data", metavar="DIR", help="images for end-to-end timing and parity (default: --val)")
    p.add_argument("--train", metavar="DIR", help="labelled kNN bank")
    p.add_argument("--val", metavar="DIR", help="labelled kNN queries")
    p.add_argument("--train-limit", type=positive_int, default=5000, metavar="N")
    p.add_argument("--val-limit", type=positive_int, default=1000, metavar="N")
    p.add_argument("--batch-sizes", type=positive_ints, default=(1, 8, 32), metavar="1,8,32")
    p.add_argument("--threads", type=positive_int, metavar="N", help="threads per runtime (default: all usable cores)")
    p.add_argument("--warmup-s", type=nonnegative_float, default=1.0, metavar="F")
    p.add_argument("--min-time-s", type=positive_float, default=2.0, metavar="F")
    p.add_argument("--min-runs", type=positive_int, default=20, metavar="N")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds; medians are reported")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--torch", default="eager", metavar="V1,V2",
                   help="how the PyTorch student runs, each a row beside the artifacts: "
                        f"{', '.join(torch_variants())} (default eager, the reference row; cudagraphs is "
                        "torch.compile's reduce-overhead mode and needs --device cuda)")
    p.add_argument("--cross-check", action="store_true",
                   help="also time every OpenVINO artifact with OpenVINO's benchmark_app (same batch sizes and "
                        "threads)")
    p.add_argument("--out", metavar="DIR", help="report folder (default: bench/ in the first run or export folder "
                   "named, or beside the first artifact)")
    p.add_argument("--profile", action="store_true",
                   help="instead of timing: per-layer times of one ONNX or OpenVINO artifact from its runtime's "
                        "profiler, at the first --batch-sizes value (profile.json, profile.md)")
    p.add_argument("--profile-runs", type=positive_int, default=50, metavar="N",
                   help="inferences profiled (default 50)")
    add_json_flag(p)


def run(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from bench.runner import BenchConfig, run_bench
    from distill.core.errors import ConfigError, PartialResult

    if args.profile:
        return _profile(args)
    if bool(args.train) != bool(args.val):
        raise ConfigError("--train and --val go together (the kNN bank and its queries)")
    if args.device not in ("cpu",) and not args.device.startswith("cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got '{args.device}'")
    variants = tuple(dict.fromkeys(v.strip() for v in args.torch.split(",") if v.strip()))
    for v in variants:
        parse_variant(v, args.device)  # an unknown name, or CUDA graphs without --device cuda: one line
    cfg = BenchConfig(targets=args.targets, data=args.data, train=args.train, val=args.val,
                      train_limit=args.train_limit, val_limit=args.val_limit, batch_sizes=args.batch_sizes,
                      threads=args.threads, warmup_s=args.warmup_s, min_time_s=args.min_time_s,
                      min_runs=args.min_runs, rounds=args.rounds, device=args.device, out=args.out,
                      cross_check=args.cross_check, torch_variants=variants or ("eager",))
    report = run_bench(cfg)
    keys = ("backend", "variant", "precision", "batch_size", "img_size", "status", "p50_ms", "p90_ms", "p99_ms",
            "images_per_s", "peak_rss_mb", "size_mb", "knn_top1", "knn_delta", "min_cosine", "gate",
            "gate_min_cosine", "gate_overlap@10", "gate_knn", "gate_reason", "error")
    result = {"report_dir": report["report_dir"], "rows": [{k: r.get(k) for k in keys} for r in report["rows"]]}
    failed = {r.get("artifact") or r["backend"]: r.get("error") or "failed"
              for r in report["rows"] if r["status"] != "ok"}
    if failed:  # the report of the others is written; exit 4 says that not all could be measured
        name, why = next(iter(failed.items()))
        total = len({r.get("artifact") or r["backend"] for r in report["rows"]})
        # partial (4) when an artifact was measured; only the PyTorch reference row, or nothing: a failure (2)
        measured = any(r["status"] == "ok" and r["backend"] != "torch" for r in report["rows"])
        kind = PartialResult if measured else ConfigError
        raise kind(f"{len(failed)} of {total} artifact(s) could not be benchmarked, first '{name}': "
                   f"{str(why).splitlines()[0]} (the report is in {report['report_dir']})", result=result)
    gate_failed = sorted({Path(r["artifact"]).name for r in report["rows"] if r.get("gate") == "fail"})
    if gate_failed:  # measured, and no longer within the export's tolerance on this machine
        from export.errors import ParityError

        reason = next(r["gate_reason"] for r in report["rows"] if r.get("gate") == "fail")
        error = ParityError(f"{len(gate_failed)} artifact(s) fail the parity gate on this machine, first "
                            f"'{gate_failed[0]}': {reason}; do not deploy it here (report in {report['report_dir']})",
                            result=result)
        raise error
    return result


def _profile(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from bench.layers import profile_artifact, profile_markdown
    from bench.runner import default_out
    from distill.core.atomic import atomic_write_json, atomic_write_text
    from distill.core.errors import ConfigError

    if len(args.targets) != 1 or not Path(args.targets[0]).is_file():
        raise ConfigError("--profile takes one artifact file (an .onnx or an OpenVINO .xml), not "
                          f"{' '.join(args.targets)}")
    result = profile_artifact(args.targets[0], args.batch_sizes[0], args.profile_runs, args.threads)
    out = Path(args.out) if args.out else default_out(args.targets)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.targets[0]).name.split(".")[0]
    atomic_write_json(out / f"{stem}.profile.json", result)
    atomic_write_text(out / f"{stem}.profile.md", profile_markdown(result))
    return {**result, "report_dir": str(out)}


def format_result(result: dict) -> str:
    from pathlib import Path

    if "layers" in result:  # --profile
        from bench.layers import profile_markdown

        return profile_markdown(result) + f"\nwritten to {result['report_dir']}"

    md = Path(result["report_dir"]) / "report.md"
    return md.read_text() + (f"\nreports: {result['report_dir']} (report.json, report.csv, report.md, "
                             "latency_vs_accuracy.png)")
