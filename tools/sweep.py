"""Quick recipe sweeps: short runs on a class-balanced subset, each scored by weighted kNN on a fixed bank.

Each SPEC is ``name={json of TrainConfig fields}``; the rest of the config is shared. One JSON line per run is
printed and appended to ``<out>/sweep.jsonl``. This is how the 32x32 recipe in docs/RESULTS.md was chosen:

    python -m tools.sweep --data cifar10/train --val cifar10/test --teacher cifar_resnet56.onnx \
        'mocov2={"augmentation": "mocov2"}' 'light={"augmentation": "light", "lr": 0.1}'
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from distill.checkpoint import load_student
from distill.config import TrainConfig
from distill.core.cli import script
from distill.core.images import scan_folder
from distill.embedders import StudentEmbedder
from distill.evaluate import evaluate_knn
from distill.trainer import Trainer


def run_sweep(specs: list[str], data: str, val: str, teacher: str, out: Path, limit: int = 10000, epochs: int = 4,
              bank: int = 10000, queries: int = 2000, base: dict | None = None) -> list[dict]:
    bank_folder, val_folder = scan_folder(data, bank), scan_folder(val, queries)
    shared = {"limit": limit, "epochs": epochs, "batch_size": 128, "queue_size": 16384, "in_memory": "on",
              "log_every": 50, **(base or {})}
    rows = []
    for spec in specs:
        name, _, overrides = spec.partition("=")
        run_dir = out / name
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = TrainConfig.from_dict({"data": data, "teacher": teacher, "out": str(run_dir), **shared,
                                     **json.loads(overrides or "{}")})
        t0 = time.time()
        summary = Trainer(cfg).fit()
        seconds = time.time() - t0
        r = evaluate_knn(StudentEmbedder(load_student(run_dir)), bank_folder, val_folder)
        row = {"name": name, "overrides": json.loads(overrides or "{}"), "knn_top1": r["knn_top1"],
               "nn_top1": r["nn_top1"], "final_loss": summary["final_loss"], "train_s": round(seconds),
               "images_per_s": summary["images_per_s"]}
        print(json.dumps(row), flush=True)
        with open(out / "sweep.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


@script("tools.sweep")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.sweep", description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="+", metavar="NAME=JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--limit", type=int, default=10000, help="training images (class-balanced)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--bank", type=int, default=10000, help="kNN bank images from --data")
    p.add_argument("--queries", type=int, default=2000, help="kNN queries from --val")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_sweep(args.specs, args.data, args.val, args.teacher, out, args.limit, args.epochs, args.bank, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
