"""The retrieval study behind docs/RETRIEVAL.md: for each model (exported students, and a teacher file as the
reference embedder) and each index kind, build the index over a labelled database folder, then measure
retrieval quality and per-query latency with a labelled query folder.

    python -m tools.retrieval_study --images tiny-imagenet/train --queries tiny-imagenet/val \
        --model runs/seed/export/m-onnx-fp32.onnx --model runs/seed/export/m-openvino-fp32.xml \
        --model teacher.onnx --out runs/retrieval --doc docs/RETRIEVAL.md
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path

from distill.core.atomic import atomic_write_json, write_between_markers
from distill.core.cli import script
from retrieval_demo.metrics import evaluate_index
from retrieval_demo.kinds import INDEX_KINDS
from retrieval_demo.params import IndexParams
from retrieval_demo.store import ImageIndex, build_index, rebuild_index


def run_study(models: list[str], images: str, queries: str, out: Path, kinds: tuple[str, ...] = tuple(INDEX_KINDS),
              query_limit: int | None = None, workers: int = 2) -> list[dict]:
    rows = []
    for model in models:
        embedded = None  # (folder, seconds) of this model's first index: the others reuse its embeddings
        for kind in kinds:
            folder = out / f"{Path(model).stem}-{kind}"
            shutil.rmtree(folder, ignore_errors=True)
            if embedded is None:
                built = build_index(model, images, str(folder), IndexParams(kind=kind), workers=workers)
                embedded = (folder, built["seconds"])
            else:  # build time = embedding the images (measured once) + building this index
                built = rebuild_index(embedded[0], folder, IndexParams(kind=kind))
                built["seconds"] += embedded[1]
            index = ImageIndex(folder)
            ev = evaluate_index(index, queries, ks=(1, 10), limit=query_limit, workers=workers)
            rows.append({"model": Path(model).name, "runtime": index.manifest["model"]["runtime"],
                         "precision": index.manifest["model"]["precision"], "kind": kind,
                         "params": index.manifest["params"], "build_s": built["seconds"], **ev})
    return rows


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _f(v, d=3) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def render(rows: list[dict], command: str) -> str:
    lines = ["| model | runtime | index | build s | P@1 | P@10 | mAP@100 | recall@10 vs exact | embed p50 ms | "
             "search p50 ms | query p50 ms | query p99 ms |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        knob = {"ivf": f" (nlist {r['params']['nlist']}, nprobe {r['nprobe']})",
                "hnsw": f" (M {r['params']['m']}, efSearch {r['ef_search']})"}.get(r["kind"], "")
        lines.append(f"| {r['model']} | {r['runtime']} {r['precision']} | {r['kind']}{knob} | {r['build_s']:.1f} | "
                     f"{_f(r['precision@1'])} | {_f(r['precision@10'])} | {_f(r['map'])} | "
                     f"{_f(r['recall@10_vs_exact'])} | {_f(r['embed_p50_ms'], 2)} | {_f(r['search_p50_ms'], 3)} | "
                     f"{_f(r['query_p50_ms'], 2)} | {_f(r['query_p99_ms'], 2)} |")
    head = [f"Command: `{command}`", "",
            f"Machine: {_cpu_model()}, {len(os.sched_getaffinity(0))} "
            f"cores; {rows[0]['num_indexed']} indexed images, {rows[0]['num_queries']} queries; latency over "
            f"{rows[0]['latency_queries']} single-image queries (decoding not timed).", ""]
    return "\n".join(head + lines) + "\n"


@script("tools.retrieval_study")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.retrieval_study", description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--out", default="runs/retrieval")
    p.add_argument("--doc", help="write the table to this Markdown file (between the study markers)")
    p.add_argument("--kinds", default=",".join(INDEX_KINDS))
    p.add_argument("--query-limit", type=int)
    p.add_argument("--marker", default="study", help="the doc section's marker name (<!-- NAME:begin -->)")
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = run_study(args.model, args.images, args.queries, out, tuple(args.kinds.split(",")), args.query_limit)
    command = "python -m tools.retrieval_study " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    table = render(rows, command)
    atomic_write_json(out / "study.json", rows)
    if args.doc:
        write_between_markers(Path(args.doc), args.marker, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
