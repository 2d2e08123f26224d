"""The reproduction table: does a small network learn more from a teacher than from itself?

Rows, on the CIFAR-10 test bed at 32x32, every trained row with the same budget (``--epochs`` passes over the
50,000 training images, batch 128, lr 0.1, SGD, 20 % linear warm-up then cosine decay):

* the teachers evaluated as they are (``cifar_resnet56``, supervised; ``cifar_autoencoder384``, self-supervised);
* ``mobilenetv3_large_100``, ``efficientnet_b0`` and ``alexnet`` with random weights (the floor), trained (a)
  from scratch by ``pretrain
  --method mocov2`` and (b) by ``train`` with ``seed``, ``compress``, ``compress-1q``, ``disco`` and ``regress``
  (SimReg) from ``cifar_resnet56``; and ``mobilenetv3_large_100`` with ``seed`` from ``cifar_autoencoder384``.

Each row is evaluated on ``cifar10/test`` with weighted kNN, 1-NN, the linear probe and cluster alignment
(``eval --protocol all``; the bank and probe training set is a class-balanced ``--train-limit`` subset). The
script writes ``docs/results.json`` and the table between markers in ``docs/RESULTS.md``; a finished row
(``ROW/row.json``) is reused, so an interrupted table continues where it stopped. ``--before OLD.json`` adds
each row's kNN from an earlier table (matched by teacher, student and method); ``--eval-every N`` records a kNN
curve per trained row and ``--plot PNG`` draws the curves of all trained rows in one figure.

  python -m tools.results --data C/train --val C/test --teachers ../shared/testbed/teachers
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from distill.core.atomic import atomic_write_json, write_between_markers
from distill.core.cli import script
from distill.core.errors import EdgeDistillError

STUDENTS = ("mobilenetv3_large_100", "efficientnet_b0", "alexnet")
DISTILL = ("seed", "compress", "compress-1q", "disco", "regress")
# per-method settings, the same for every student (the 32 px recipe of docs/RESULTS.md, where each is reasoned).
# DisCo's MSE weight keeps the official per-sample balance: its code sums the MSE over a per-GPU batch of 32 (256 on
# 8 GPUs) beside a batch-mean cross-entropy; at one process's batch of 128 the same balance is w = 32 / 128.
RECIPES = {
    "seed": {"queue_size": 16384, "teacher_center": True},
    "compress": {"queue_size": 4096, "ema_momentum": 0.99, "teacher_center": True},
    "compress-1q": {"queue_size": 4096, "teacher_center": True},
    "disco": {"queue_size": 4096, "ema_momentum": 0.99, "teacher_center": True, "loss_options": {"mse_weight": 0.25}},
    "regress": {"teacher_center": True},
    "scratch-mocov2": {"queue_size": 4096, "ema_momentum": 0.99, "augmentation": "mocov2"},
}


def _method_item(item: str, what: str) -> tuple[str, str, float]:
    """``METHOD.NAME=VALUE`` -> (METHOD, NAME, float VALUE); malformed items raise ValueError naming the form."""
    key, sep, value = item.partition("=")
    method, dot, name = key.partition(".")
    if not sep or not dot or method not in RECIPES or not name:
        raise ValueError(f"'{item}' is not METHOD.{what}=VALUE with METHOD one of {', '.join(RECIPES)}")
    try:
        return method, name, float(value)
    except ValueError:
        raise ValueError(f"'{item}': VALUE must be a number") from None


def set_recipe_field(item: str) -> None:
    """``METHOD.FIELD=VALUE`` -> ``RECIPES[METHOD][FIELD] = float(VALUE)`` for a TrainConfig field (ema_momentum,
    queue_size, ...): a variant of a method's recipe, run into its own --out."""
    method, name, number = _method_item(item, "FIELD")
    RECIPES[method] = {**RECIPES[method], name: int(number) if number.is_integer() and name.endswith("size") else number}


def set_loss_option(item: str) -> None:
    """``METHOD.OPTION=VALUE`` -> ``RECIPES[METHOD]["loss_options"][OPTION] = float(VALUE)``."""
    method, option, number = _method_item(item, "OPTION")
    RECIPES[method] = {**RECIPES[method], "loss_options": {**RECIPES[method].get("loss_options", {}), option: number}}


@dataclass(frozen=True)
class Row:
    teacher: str | None  # teacher name (a file stem in --teachers), None for from-scratch rows
    student: str | None  # None for a teacher evaluated as is
    method: str  # "teacher" | "random-init" | "scratch-mocov2" | seed | compress | compress-1q | disco

    @property
    def key(self) -> str:
        if self.student is None:
            return f"teacher-{self.teacher}"
        return f"{self.student}-{self.method}" + (f"-{self.teacher}" if self.teacher else "")


def default_rows() -> list[Row]:
    rows = [Row("cifar_resnet56", None, "teacher"), Row("cifar_autoencoder384", None, "teacher")]
    for student in STUDENTS:
        rows += [Row(None, student, "random-init"), Row(None, student, "scratch-mocov2")]
        rows += [Row("cifar_resnet56", student, m) for m in DISTILL]
    rows.append(Row("cifar_autoencoder384", "mobilenetv3_large_100", "seed"))
    return rows


def teacher_spec(teachers: Path, name: str, fmt: str) -> str:
    path = teachers / (f"{name}.onnx" if fmt == "onnx" else f"{name}.torchscript.pt")
    if not path.is_file():
        raise EdgeDistillError(f"teacher '{path}' not found; point --teachers at the test bed's teachers/ folder")
    return str(path)


def untrained_row(row: Row, run_dir: Path) -> str:
    """The floor: the student with seed-0 random weights and ImageNet normalisation, evaluated as is."""
    from distill.checkpoint import save_student
    from distill.students import untrained_student

    model, pre = untrained_student(row.student, 32)
    save_student(run_dir / "student.pt", model, pre, {"untrained": True, "seed": 0})
    return str(run_dir / "student.pt")


def train_row(row: Row, args: argparse.Namespace, run_dir: Path) -> dict:
    from distill.config import TrainConfig
    from distill.train_run import train_and_evaluate

    recipe = dict(RECIPES[row.method])
    common = dict(data=args.data, student=row.student, img_size=32, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, in_memory="on", device=args.device, workers=args.workers, out=str(run_dir),
                  max_steps=args.max_steps, log_every=50, warmup_epochs=0.2 * args.epochs,  # 20 % warm-up, then cosine
                  val=args.val if args.eval_every else None, eval_every=args.eval_every)
    if row.teacher is None:
        cfg = TrainConfig(teacher=None, method="mocov2", embed_dim=128, **common, **recipe)
    else:
        cfg = TrainConfig(teacher=teacher_spec(Path(args.teachers), row.teacher, args.teacher_format),
                          method=row.method, **common, **recipe)
        if args.cache_views:
            cfg = replace(cfg, teacher_cache=str(teacher_cache(row.teacher, args)))
    resume = (run_dir / "checkpoint.pt").is_file()
    return train_and_evaluate(cfg, resume=resume)


def teacher_cache(teacher: str, args: argparse.Namespace) -> Path:
    """The teacher's embeddings of ``--data`` at 32 px, ``--cache-views`` views (view 0 the centre crop, the others
    fixed light augmentations), built once under ``--out`` with ``edgedistill cache-teacher`` and shared by every
    row of that teacher: the rows then train without teacher forward passes (docs/RESULTS.md, "A cached teacher")."""
    from distill.core.cli import main as edgedistill

    out = Path(args.out) / f"cache-{teacher}-{args.cache_views}v"
    if not (out / "meta.json").is_file():
        code = edgedistill(["cache-teacher", "--data", args.data, "--out", str(out), "--img-size", "32",
                            "--views", str(args.cache_views), "--device", args.device, "--workers", str(args.workers),
                            "--teacher", teacher_spec(Path(args.teachers), teacher, args.teacher_format)])
        if code:
            raise EdgeDistillError(f"cache-teacher for {teacher} failed (exit {code}); see the line above")
    return out


def evaluate_row(model: str, args: argparse.Namespace, cache: Path) -> dict:
    from distill.core.device import resolve_device
    from distill.core.images import scan_folder
    from distill.embedders import load_embedder
    from distill.evaluate import evaluate_knn

    embedder = load_embedder(model, device=resolve_device(args.device))
    train, val = scan_folder(args.data, args.train_limit), scan_folder(args.val)
    return evaluate_knn(embedder, train, val, protocols=("linear", "cluster"), workers=args.workers,
                        cache_dir=str(cache))


def run_row(row: Row, args: argparse.Namespace) -> dict:
    out = Path(args.out) / row.key
    done = out / "row.json"
    budget = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "max_steps": args.max_steps,
              "train_limit": args.train_limit, **({"cache_views": args.cache_views} if args.cache_views else {})}
    if done.is_file():
        finished = json.loads(done.read_text())
        if finished.get("budget") != budget:
            raise EdgeDistillError(f"'{done}' was run with {finished.get('budget')}, not {budget}; "
                                   "use another --out for another budget")
        return finished
    started = time.time()
    images, seconds, ips = 0, 0.0, None
    if row.student is None:
        model = teacher_spec(Path(args.teachers), row.teacher, args.teacher_format)
    elif row.method == "random-init":
        model = untrained_row(row, out)
    else:
        summary = train_row(row, args, out)
        model, images, seconds, ips = str(out), summary["images_seen"], summary["train_seconds"], summary["images_per_s"]
    ev = evaluate_row(model, args, Path(args.out) / "embeddings")
    result = {"teacher": row.teacher, "student": row.student, "method": row.method,
              "knn_top1": ev["knn_top1"], "nn_top1": ev["nn_top1"], "linear_top1": ev.get("linear_top1"),
              "cluster_acc": ev.get("cluster_acc"), "images_seen": images, "seconds": round(seconds, 1),
              "images_per_s": ips, "wall_seconds": round(time.time() - started, 1), "machine": machine_name(args.device),
              "budget": budget, "budget_epochs": args.epochs if row.method not in ("teacher", "random-init") else 0,
              "num_bank": ev["num_train"],
              "num_queries": ev["num_val"]}
    atomic_write_json(done, result)
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def before_knn(path: str | None) -> dict[tuple, float]:
    """(teacher, student, method) -> kNN top-1 of an earlier results.json."""
    if not path:
        return {}
    try:
        rows = json.loads(Path(path).read_text())["rows"]
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeDistillError(f"--before: cannot read '{path}' ({exc}); pass an earlier docs/results.json") from None
    return {(r["teacher"], r["student"], r["method"]): r["knn_top1"] for r in rows}


def render(rows: list[dict], meta: dict, before: dict[tuple, float] | None = None) -> str:
    before = before or {}
    machines = sorted({r.get("machine") or meta["machine"] for r in rows})
    carried = sum(1 for r in rows if r.get("carried"))
    lines = [f"Machine{'s' if len(machines) > 1 else ''}: {'; '.join(machines)} (per row in the last column). Budget per trained row: {meta['epochs']} epoch(s) of the 50,000 training "
             f"images (batch {meta['batch_size']}, lr {meta['lr']}). Evaluation on cifar10/test ({rows[0]['num_queries']} "
             f"images); bank and probe training set: {rows[0]['num_bank']} class-balanced training images.", "",
             f"Command: `{meta['command']}`", "",
             *([f"{carried} row(s) marked * were not re-run by this command: they are carried from the earlier "
                "table as they were (their 'kNN before' is empty).", ""] if carried else []),
             "| teacher | student | method | kNN top-1 | kNN before | 1-NN | linear | cluster | images seen | train s | "
             "img/s | machine |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        old = None if r.get("carried") else before.get((r["teacher"], r["student"], r["method"]))
        lines.append(f"| {r['teacher'] or '-'} | {r['student'] or '(teacher as is)'} | "
                     f"{r['method']}{' *' if r.get('carried') else ''} | "
                     f"{_pct(r['knn_top1'])} | {_pct(old)} | {_pct(r['nn_top1'])} | {_pct(r['linear_top1'])} | "
                     f"{_pct(r['cluster_acc'])} | {r['images_seen'] or '-'} | {r['seconds'] or '-'} | "
                     f"{r['images_per_s'] if r['images_per_s'] is not None else '-'} | "
                     f"{(r.get('machine') or meta['machine']).split(' (torch')[0]} |")
    return "\n".join(lines) + "\n"


def carried_rows(rows: list[dict], path: str | None) -> list[dict]:
    """``rows``, plus the rows of an earlier results.json that this run did not redo (marked ``carried``), in the
    earlier table's order: the table stays whole while only some rows are re-run."""
    if not path:
        return rows
    done = {(r["teacher"], r["student"], r["method"]): r for r in rows}
    old = json.loads(Path(path).read_text())["rows"]
    merged = []
    for r in old:
        key = (r["teacher"], r["student"], r["method"])
        if key in done:
            merged.append(done.pop(key))
        else:
            trained = r["method"] not in ("teacher", "random-init")
            merged.append({**r, "carried": True, "budget_epochs": r.get("budget_epochs", 1 if trained else 0)})
    return merged + list(done.values())


def write_outputs(rows: list[dict], meta: dict, args: argparse.Namespace) -> None:
    rows = carried_rows(rows, args.carry)
    if args.json != "-":
        kept = [] if not args.also else json.loads(Path(args.also).read_text())["rows"]
        atomic_write_json(args.json, {"meta": meta, "rows": rows + kept})
    if args.doc != "-":
        write_between_markers(Path(args.doc), args.marker, render(rows, meta, before_knn(args.before)))
    if args.plot:
        from distill.curves import plot_comparison

        runs = {f"{r['student']} {r['method']}": Path(args.out) / Row(r["teacher"], r["student"], r["method"]).key
                for r in rows if r["student"] and not r.get("carried") and r["method"] != "random-init"}
        runs = {k: v for k, v in runs.items() if v.is_dir()}
        plot_comparison(runs, args.plot, title=f"weighted kNN during training ({meta['epochs']} epoch(s) per row)")


def machine_name(device: str) -> str:
    import torch

    from distill.core.device import resolve_device

    if resolve_device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    import os
    import platform

    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores (torch {torch.__version__})"


@script("tools.results")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="cifar10/train")
    p.add_argument("--val", required=True, help="cifar10/test")
    p.add_argument("--teachers", required=True, help="folder holding cifar_resnet56 and cifar_autoencoder384")
    p.add_argument("--teacher-format", choices=["onnx", "torchscript"], default="onnx",
                   help="onnx (fastest on CPU) or torchscript (runs on the GPU)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training images per trained row")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--max-steps", type=int, help="cap every row (smoke tests)")
    p.add_argument("--cache-views", type=int, default=0, metavar="V",
                   help="train the distillation rows from a teacher cache of V views per image (0: run the teacher)")
    p.add_argument("--train-limit", type=int, default=10000, help="bank / probe training images")
    p.add_argument("--rows", help="comma-separated row keys to run (default: all); see --list")
    p.add_argument("--list", action="store_true", help="print the row keys and exit")
    p.add_argument("--only-finished", action="store_true",
                   help="train nothing: tabulate the rows already finished under --out (merges parallel runs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="runs/results-table")
    p.add_argument("--json", default="docs/results.json", help="the rows as JSON (-: none)")
    p.add_argument("--also", metavar="OLD_JSON", help="rows of another table (another budget) appended to --json as "
                   "they are, each with its budget_epochs; not tabulated")
    p.add_argument("--doc", default="docs/RESULTS.md", help="the document whose --marker section is the table (-: none)")
    p.add_argument("--marker", default="results-table",
                   help="the section of --doc to rewrite (<!-- MARKER:begin --> ... <!-- MARKER:end -->)")
    p.add_argument("--eval-every", type=int, default=0, metavar="N",
                   help="kNN on a labelled subset every N steps of each trained row (train --eval-every)")
    p.add_argument("--before", metavar="OLD_JSON", help="an earlier results.json: its kNN beside each row")
    p.add_argument("--carry", metavar="OLD_JSON",
                   help="keep the rows of an earlier results.json that this run does not redo (marked as carried)")
    p.add_argument("--plot", metavar="PNG", help="the kNN curves of the trained rows in one figure (with --eval-every)")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.OPTION=VALUE",
                   help="a loss option added to one method's recipe, e.g. disco.mse_weight=0.25 (repeatable; use a "
                        "separate --out: finished rows are reused)")
    p.add_argument("--recipe", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="a TrainConfig field of one method's recipe, e.g. compress.ema_momentum=0 (repeatable; use a "
                        "separate --out)")
    args = p.parse_args(argv)
    try:
        for item in args.recipe:
            set_recipe_field(item)
        for item in args.set:
            set_loss_option(item)
    except ValueError as exc:
        print(f"tools.results: error: --set {exc}", file=sys.stderr)
        return 2
    rows = default_rows()
    if args.list:
        print("\n".join(r.key for r in rows))
        return 0
    if args.rows:
        wanted = set(args.rows.split(","))
        unknown = wanted - {r.key for r in rows}
        if unknown:
            print(f"tools.results: error: unknown row {sorted(unknown)[0]!r}; see --list", file=sys.stderr)
            return 2
        rows = [r for r in rows if r.key in wanted]
    if args.only_finished:
        rows = [r for r in rows if (Path(args.out) / r.key / "row.json").is_file()]
    meta = {"machine": machine_name(args.device), "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "train_limit": args.train_limit, "command": "python -m tools.results " + " ".join(argv or sys.argv[1:])}
    results = []
    for row in rows:
        print(f"[results] {row.key}", file=sys.stderr, flush=True)
        results.append(run_row(row, args))
        write_outputs(results, meta, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
