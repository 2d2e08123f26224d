"""Train a small student to mimic a frozen teacher's similarity structure, without labels.

Examples:
  edgedistill train --data cifar10/train --val cifar10/test --teacher cifar_resnet56.onnx \\
      --student mobilenetv3_large_100 --method seed --epochs 5 --out runs/seed
  edgedistill train --out runs/seed --resume ...   (continue from the last checkpoint)
  edgedistill train --config runs/seed/config.json --lr 0.05 --out runs/seed-lr05   (replay a run, one change)
  edgedistill cache-teacher --data cifar10/train --teacher cifar_resnet56.onnx --out runs/cache
  edgedistill train ... --teacher-cache runs/cache   (teacher embeddings read, not computed)
  torchrun --nproc_per_node 4 -m distill train ...   (data-parallel; --batch-size is the global batch)

Ctrl-C or SIGTERM saves a checkpoint before stopping; --resume continues from it.
"""
from __future__ import annotations

import argparse

from distill.commands.common import (add_config_flag, add_run_arguments, add_teacher_arguments, same_named_fields,
                                     teacher_options, train_config)
from distill.core.cli import (add_json_flag, momentum, nonnegative_float, nonnegative_int, positive_float,
                              positive_int)
from distill.methods import DISTILL_METHODS, HEADS, LOSS_OPTIONS, methods_help

HELP = "distil a teacher into a student (SEED, CompRess, DisCo)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="training images (root/<class>/<img> or flat); required unless "
                   "--config names them")
    p.add_argument("--teacher", metavar="SPEC",
                   help="timm:NAME, torchvision:NAME, a TorchScript or ONNX file, or a checkpoint with --teacher-arch")
    p.add_argument("--student", default="mobilenetv3_large_100", metavar="NAME",
                   help="alexnet, mobilenetv3_large_100, efficientnet_b0, or any timm/torchvision name")
    p.add_argument("--method", default="seed", choices=DISTILL_METHODS, help=methods_help(DISTILL_METHODS))
    p.add_argument("--val", metavar="DIR", help="labelled folder: weighted-kNN evaluation at the end")
    p.add_argument("--eval-every", type=nonnegative_int, default=0, metavar="N",
                   help="steps between weighted-kNN points on a subset of --val, written to metrics.jsonl and "
                        "plotted to curves.png (0: only at the end)")
    p.add_argument("--eval-bank", type=positive_int, default=5000, metavar="N",
                   help="class-balanced bank of --data images for --eval-every (default 5000)")
    p.add_argument("--eval-queries", type=positive_int, default=2000, metavar="N",
                   help="class-balanced --val images for --eval-every (default 2000)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<student>-<method>)")
    p.add_argument("--img-size", type=positive_int, metavar="N", help="student input size (default: the teacher's)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default 0.05 x batch/256)")
    p.add_argument("--weight-decay", type=nonnegative_float, default=1e-4)
    p.add_argument("--warmup-epochs", type=nonnegative_float, default=1.0)
    p.add_argument("--queue-size", type=positive_int, metavar="N",
                   help="queue/bank length (default: SEED and DisCo 65536, CompRess 128000)")
    for option in LOSS_OPTIONS:
        if option.type == "flag":
            p.add_argument(option.flag, dest=option.name, action="store_const", const=True, default=None,
                           help=option.help)
        else:
            p.add_argument(option.flag, dest=option.name, type=option.type, help=option.help)
    p.add_argument("--ema-momentum", type=momentum, default=0.999, help="momentum student (compress, disco)")
    p.add_argument("--head", default="auto", choices=("auto", *HEADS),
                   help="head between backbone and loss (auto: none for compress/compress-1q as in the official "
                        "code, mlp4 for regress as in SimReg, mlp otherwise)")
    p.add_argument("--hidden-dim", type=positive_int, default=2048, help="projection-head width")
    p.add_argument("--embed-dim", type=positive_int, help="projection output (default: the teacher's dim)")
    p.add_argument("--augment", default="auto", choices=["auto", "mocov2", "light", "none"],
                   help="augmentation preset (auto: light up to 64 px, MoCo-v2 above)")
    p.add_argument("--teacher-center", action="store_true",
                   help="subtract the teacher's mean embedding before the loss")
    add_run_arguments(p)
    p.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over the global batch under torchrun "
                                                          "(SyncBatchNorm)")
    p.add_argument("--teacher-cache", metavar="CACHE",
                   help="teacher embeddings from edgedistill cache-teacher: the teacher is never run")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (set aside, deleted once the new run has its first checkpoint, "
                        "put back if it fails before)")
    add_teacher_arguments(p)
    add_config_flag(p)
    add_json_flag(p)


def config_from_args(args: argparse.Namespace):
    """The TrainConfig of the flags: a flag named like a config field sets it (tests/distill/test_registry.py checks
    that each such flag's default is the field's); the others are mapped here."""
    from distill.config import TrainConfig

    loss_options = {o.name: getattr(args, o.name) for o in LOSS_OPTIONS if getattr(args, o.name) is not None}
    return train_config(args, same_named_fields(args, TrainConfig), loss_options=loss_options,
                        teacher_options=teacher_options(args), augmentation=args.augment)


def run(args: argparse.Namespace) -> dict:
    from distill.train_run import train_and_evaluate

    return train_and_evaluate(config_from_args(args), resume=args.resume, overwrite=args.overwrite)


def format_result(r: dict) -> str:
    lines = [f"trained {r['student']} with {r['method']} from {r['teacher']}: {r['steps']} steps, "
             f"{r['images_seen']} images in {r['train_seconds']:.0f} s ({r['images_per_s']:.0f} img/s), "
             f"final loss {r['final_loss']:.4f}"]
    if r.get("num_skipped"):
        lines.append(f"skipped {r['num_skipped']} unreadable images")
    ev = r.get("eval")
    if ev:
        lines.append(f"kNN top-1 {ev['knn_top1']:.4f}  top-5 {ev['knn_top5']:.4f}  1-NN {ev['nn_top1']:.4f} "
                     f"(bank {ev['num_train']}, queries {ev['num_val']})")
    lines.append(f"outputs: {r['run_dir']} (student.pt, checkpoint.pt, metrics.jsonl, summary.json)")
    return "\n".join(lines)
