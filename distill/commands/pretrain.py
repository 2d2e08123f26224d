"""Self-supervised contrastive learning from scratch, with no teacher: MoCo-v2 or SimCLR.

This is the "student without teacher" baseline that SEED and CompRess compare against, trained by the same
pipeline, checkpoints and evaluation as `edgedistill train`; with a GPU it also makes a contrastive teacher of
your own. Augmentations default to MoCo-v2's (contrastive learning needs strong ones, at any image size).

Examples:
  edgedistill pretrain --data cifar10/train --val cifar10/test --model mobilenetv3_large_100 --method mocov2 \\
      --img-size 32 --epochs 200 --out runs/moco
  edgedistill pretrain ... --out runs/moco --resume   (continue from the last checkpoint)
"""
from __future__ import annotations

import argparse

from distill.commands.common import add_config_flag, add_run_arguments, same_named_fields, train_config
from distill.core.cli import add_json_flag, floats3, momentum, nonnegative_float, positive_float, positive_int
from distill.methods import PRETRAIN_METHODS, methods_help

HELP = "self-supervised pretraining without a teacher (MoCo-v2, SimCLR): the baseline"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="training images (root/<class>/<img> or flat); required unless "
                   "--config names them")
    p.add_argument("--model", default="mobilenetv3_large_100", metavar="NAME",
                   help="alexnet, mobilenetv3_large_100, efficientnet_b0, or any timm/torchvision name")
    p.add_argument("--method", default="mocov2", choices=PRETRAIN_METHODS, help=methods_help(PRETRAIN_METHODS))
    p.add_argument("--val", metavar="DIR", help="labelled folder: weighted-kNN evaluation at the end")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<model>-<method>)")
    p.add_argument("--img-size", type=positive_int, default=224, metavar="N", help="input size (default 224)")
    p.add_argument("--mean", type=floats3, metavar="R,G,B", help="normalisation mean (default ImageNet's)")
    p.add_argument("--std", type=floats3, metavar="R,G,B", help="normalisation std (default ImageNet's)")
    p.add_argument("--epochs", type=positive_int, default=200)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default 0.03 x batch/256, MoCo-v2)")
    p.add_argument("--weight-decay", type=nonnegative_float, default=1e-4)
    p.add_argument("--warmup-epochs", type=nonnegative_float, default=1.0)
    p.add_argument("--queue-size", type=positive_int, default=4096, metavar="N", help="MoCo key queue")
    p.add_argument("--temperature", type=positive_float, help="InfoNCE temperature (default: MoCo-v2 0.2, SimCLR 0.5)")
    p.add_argument("--ema-momentum", type=momentum, default=0.99, help="MoCo key encoder momentum")
    p.add_argument("--hidden-dim", type=positive_int, default=2048, help="projection-head width")
    p.add_argument("--embed-dim", type=positive_int, default=128, help="projection output")
    p.add_argument("--augment", default="mocov2", choices=["mocov2", "light", "none"])
    add_run_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (set aside, deleted once the new run has its first checkpoint, "
                        "put back if it fails before)")
    add_config_flag(p)
    add_json_flag(p)


def config_from_args(args: argparse.Namespace):
    """The TrainConfig of the flags (common.same_named_fields), with pretrain's own settings: no teacher, MoCo-v2's
    base learning rate, the key queue for MoCo-v2 only."""
    from distill.config import TrainConfig
    from distill.teachers import TeacherOptions

    values = same_named_fields(args, TrainConfig)
    if "model" in getattr(args, "_given", ()):  # --model is the config's student
        args._given = args._given | {"student"}
    values.update(teacher=None, student=args.model, base_lr=0.03,
                  queue_size=args.queue_size if args.method == "mocov2" else None)
    options = {"temperature": args.temperature} if args.temperature is not None else {}
    return train_config(args, values, loss_options=options, augmentation=args.augment,
                        teacher_options=TeacherOptions(mean=args.mean, std=args.std))


def run(args: argparse.Namespace) -> dict:
    from distill.train_run import train_and_evaluate

    return train_and_evaluate(config_from_args(args), resume=args.resume, overwrite=args.overwrite)


def format_result(r: dict) -> str:
    from distill.commands.train import format_result as train_format

    return train_format({**r, "teacher": "no teacher"}).replace(" from no teacher", " (self-supervised)")
