"""The standard benchmark behind ``make bench`` and docs/BENCHMARKS.md.

For each student and input size: a student checkpoint (a trained run where one is given, else the architecture
with seed-0 random weights, which costs the same to run), its ONNX and OpenVINO exports at fp32 / fp16 / int8,
and one ``run_bench`` over all of them. Every table lands in one Markdown file with the command that made it;
the docs are rewritten only when named (``--doc``, ``--export-doc``), so that a run of a few students never
replaces the published tables by accident.

    python -m tools.bench_suite --out runs/bench --doc docs/BENCHMARKS.md \
        --trained mobilenetv3_large_100=runs/demo/student --train cifar10/train --val cifar10/test
"""
from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path


from bench.report import cross_check_sections, markdown_table, scenarios_table
from bench.runner import BenchConfig, run_bench
from distill.checkpoint import save_student
from distill.core.atomic import atomic_write_text, write_between_markers
from distill.core.cli import script
from distill.core.progress import progress
from distill.students import untrained_student

STUDENTS = ("mobilenetv3_large_100", "efficientnet_b0", "alexnet")
NOTES = "<!-- notes: hand-written below this line, kept when the tables are regenerated -->"
SIZES = (32, 224)


@dataclass
class SuiteConfig:
    out: str = "runs/bench"
    doc: str | None = None  # the page to (re)write, e.g. docs/BENCHMARKS.md (make bench); None: runs/ only
    export_doc: str | None = None  # the parity table goes between markers in this file (e.g. docs/EXPORT.md)
    students: tuple[str, ...] = STUDENTS
    sizes: tuple[int, ...] = SIZES
    batch_sizes: tuple[int, ...] = (1, 8)
    trained: dict[str, str] | None = None  # student name -> run folder (used at its own input size)
    train: str | None = None  # labelled bank and queries for task parity (trained students only)
    val: str | None = None
    calib: str | None = None  # calibration / parity images (default: val)
    formats: tuple[str, ...] = ("onnx", "openvino")
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    warmup_s: float = 1.0
    min_time_s: float = 2.0
    rounds: int = 3
    train_limit: int = 5000  # kNN bank and queries for task parity
    val_limit: int = 1000
    calib_size: int = 128  # int8 calibration images, from --train where given (never the parity images)
    parity_size: int = 64
    parity_only: bool = False  # export and gate, no timing: only the parity table of --export-doc
    cross_check: bool = False  # OpenVINO's benchmark_app beside every OpenVINO row (bench.crosscheck)


def _student_run(cfg: SuiteConfig, name: str, size: int, out: Path) -> tuple[Path, bool]:
    """A run folder holding student.pt: the trained one (copied config) or seed-0 random weights."""
    trained = (cfg.trained or {}).get(name)
    if trained:
        from distill.checkpoint import load_student

        loaded = load_student(trained)
        if loaded.preprocess.input_size == size:
            return Path(trained), True
    run = out / f"{name}-{size}"
    if not (run / "student.pt").is_file():
        run.mkdir(parents=True, exist_ok=True)
        model, pre = untrained_student(name, size)
        save_student(run / "student.pt", model, pre, {"untrained": True, "student": name})
    return run, False


def run_suite(cfg: SuiteConfig) -> list[dict]:
    from export import ExportConfig, export_model

    out = Path(cfg.out)
    sections = []
    for name in progress(cfg.students, desc="students", unit="student"):
        for size in cfg.sizes:
            run, trained = _student_run(cfg, name, size, out)
            export_dir = out / f"{name}-{size}-export"
            images = cfg.val
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exported = export_model(ExportConfig(
                    model=str(run), formats=cfg.formats, precisions=cfg.precisions, calib=cfg.calib or cfg.train or images,
                    calib_size=cfg.calib_size, parity_data=images, parity_size=cfg.parity_size, img_size=size,
                    out=str(export_dir), allow_parity_failure=True, workers=0))
            if cfg.parity_only:
                sections.append({"student": name, "img_size": size, "trained": trained, "export": exported})
                continue
            targets = [str(run / "student.pt")] + [a["path"] for a in exported["artifacts"] if a.get("path")
                                                  and not a["path"].endswith(".failed")]
            bench_cfg = BenchConfig(targets=targets, data=images,
                                    train=cfg.train if trained else None, val=cfg.val if trained else None,
                                    train_limit=cfg.train_limit, val_limit=cfg.val_limit, batch_sizes=cfg.batch_sizes,
                                    warmup_s=cfg.warmup_s, min_time_s=cfg.min_time_s, rounds=cfg.rounds,
                                    out=str(out / f"{name}-{size}-report"), workers=0, cross_check=cfg.cross_check)
            report = run_bench(bench_cfg)
            sections.append({"student": name, "img_size": size, "trained": trained, "report": report,
                             "export": exported})
    return sections


def _floor_line(report: dict) -> str:
    rows = [r for r in report["rows"] if r["status"] == "ok" and r["batch_size"] == 1 and r.get("floor_ms")]
    if not rows:
        return ""
    best = min(rows, key=lambda r: r["p50_ms"])
    return (f"Fastest at batch 1: {best['backend']} {best['precision']}, {best['p50_ms']:.2f} ms, "
            f"{best['p50_ms'] / best['floor_ms']:.1f}x the compute floor of {best['floor_ms']:.3f} ms "
            f"(FLOPs / measured fp32 peak).")


def parity_table(sections: list[dict], command: str) -> str:
    """Every export's parity figures (from each export.json), one row per student, size, format and precision."""
    lines = [f"Command: `{command}` (see docs/BENCHMARKS.md for the machine).", "",
             "| student | size | weights | format | precision | status | float quantizers | size MB | min cos | mean cos | "
             "overlap@10 | max abs | p99 abs |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sections:
        for a in s["export"]["artifacts"]:
            p = a.get("parity") or {}
            status = {"ok": "✅ ok", "parity_failed": "❌ parity failed"}.get(a["status"], f"❌ {a['status']}")
            fq = a.get("float_quantizers")
            lines.append(f"| {s['student']} | {s['img_size']} | {'trained' if s['trained'] else 'untrained'} | "
                         f"{a['format']} | {a['precision']} | {status} | {f'{fq[0]} of {fq[1]}' if fq else '-'} | "
                         f"{_num(a.get('size_bytes', 0) / 1e6, 1)} | "
                         f"{_num(p.get('min_cosine'), 6)} | {_num(p.get('mean_cosine'), 6)} | "
                         f"{_num(p.get('neighbour_overlap@10'), 3)} | {_num(p.get('max_abs'), 2, 'e')} | "
                         f"{_num(p.get('p99_abs'), 2, 'e')} |")
    return "\n".join(lines) + "\n"


def _num(v, digits: int, kind: str = "f") -> str:
    return "-" if v is None else f"{v:.{digits}{kind}}"


def render(sections: list[dict], command: str) -> str:
    env = sections[0]["report"]["environment"]
    cpu = env["cpu"]
    v = env["versions"]
    lines = ["# Benchmarks", "",
             "Produced on this machine by the standard benchmark (the second step of `make bench`); the exact command:", "", "```", command, "```", "",
             f"Machine: {cpu['model']}, {cpu['usable_cores']} usable cores ({', '.join(cpu['flags'])}), "
             f"{env['memory_gb']} GB, {env['threads']} threads per runtime, measured fp32 peak "
             f"{env['peak_gflops_fp32']} GFLOP/s; " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".", "",
             "Each backend runs in its own process; rounds are interleaved (A B C A B C ...) and each statistic is "
             "the median over rounds. p50 is per-call inference latency on a ready batch; `x torch` is PyTorch "
             "eager's p50 divided by the backend's, in the same run. `min cos` is the worst cosine between the "
             "backend's and PyTorch's embeddings of the same real images. Untrained students (seed-0 weights) cost "
             "the same to run as trained ones, but their int8 parity is not meaningful: int8 calibrates on "
             "activations that a trained network does not have.", ""]
    for s in sections:
        r = s["report"]
        student = r["student"]
        kind = "trained (SEED run), kNN on the labelled split" if s["trained"] else "untrained, seed-0 weights"
        lines += [f"## {s['student']} at {s['img_size']}x{s['img_size']} ({kind})", "",
                  f"{student['params'] / 1e6:.2f} M parameters, {student['flops_per_image'] / 1e6:.1f} MFLOPs per image.",
                  "", markdown_table(r), "", _floor_line(r), "",
                  "Single-stream (batch 1, p90) and offline (best images/s over the batch sizes):", "",
                  scenarios_table(r)] + cross_check_sections(r) + [""]
    return "\n".join(lines)


@script("tools.bench_suite")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_suite", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--doc", help="rewrite this page with the tables (make bench: docs/BENCHMARKS.md)")
    p.add_argument("--export-doc", help="file whose parity markers get the export table (docs/EXPORT.md)")
    p.add_argument("--students", default=",".join(STUDENTS))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--trained", action="append", default=[], metavar="NAME=RUN_DIR")
    p.add_argument("--train")
    p.add_argument("--val")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-time-s", type=float, default=2.0)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--train-limit", type=int, default=5000)
    p.add_argument("--val-limit", type=int, default=1000)
    p.add_argument("--calib-size", type=int, default=128, help="int8 calibration images (from --train where given)")
    p.add_argument("--parity-size", type=int, default=64, help="parity images (from --val)")
    p.add_argument("--cross-check", action="store_true", help="also run OpenVINO's benchmark_app on every IR")
    p.add_argument("--parity-only", action="store_true",
                   help="export and gate only, no timing: rewrites just the parity table of --export-doc")
    args = p.parse_args(argv)
    cfg = SuiteConfig(out=args.out, doc=args.doc, export_doc=args.export_doc, students=tuple(args.students.split(",")),
                      sizes=tuple(int(s) for s in args.sizes.split(",")),
                      batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")),
                      trained=dict(t.split("=", 1) for t in args.trained), train=args.train, val=args.val,
                      rounds=args.rounds, min_time_s=args.min_time_s, warmup_s=args.warmup_s,
                      train_limit=args.train_limit, val_limit=args.val_limit, calib_size=args.calib_size,
                      parity_size=args.parity_size, parity_only=args.parity_only,
                      cross_check=args.cross_check)
    sections = run_suite(cfg)
    command = "python -m tools.bench_suite " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if cfg.parity_only:
        table = parity_table(sections, command)
        if cfg.export_doc:
            write_between_markers(Path(cfg.export_doc), "parity", table)
        print(table)
        return 0
    text = render(sections, command)
    atomic_write_text(Path(cfg.out) / "suite.md", text)  # always kept with the run; --doc publishes it
    if cfg.doc:
        doc = Path(cfg.doc)
        old = doc.read_text() if doc.is_file() else ""
        if NOTES in old:  # hand-written reading of the numbers survives a regeneration
            text += "\n" + NOTES + old.split(NOTES, 1)[1]
        atomic_write_text(doc, text)
    if cfg.export_doc:
        write_between_markers(Path(cfg.export_doc), "parity", parity_table(sections, command))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
