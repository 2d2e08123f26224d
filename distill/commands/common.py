"""Flags shared by several commands of the ``distill`` package (the argparse types are in :mod:`distill.core.cli`)."""
from __future__ import annotations

import argparse

from distill.core.cli import duration, floats3, nonnegative_int, positive_int


def add_teacher_arguments(parser: argparse.ArgumentParser, prefix: str = "teacher") -> None:
    g = parser.add_argument_group("teacher / model interpretation")
    g.add_argument(f"--{prefix}-weights", metavar="FILE", help="weights for a timm:/torchvision: teacher")
    g.add_argument(f"--{prefix}-arch", metavar="ARCH",
                   help="architecture of a state-dict checkpoint: timm:NAME, torchvision:NAME, module:factory or "
                        "file.py:factory")
    g.add_argument(f"--{prefix}-drop-head", nargs="*", metavar="PREFIX", default=None,
                   help="drop classifier/projection heads from the checkpoint (alone: fc, head, classifier, linear, "
                        "projector, ...; or the given key prefixes)")
    g.add_argument(f"--{prefix}-input-size", type=positive_int, metavar="N", help="override the input size")
    g.add_argument(f"--{prefix}-mean", type=floats3, metavar="R,G,B", help="override the normalisation mean")
    g.add_argument(f"--{prefix}-std", type=floats3, metavar="R,G,B", help="override the normalisation std")
    g.add_argument(f"--{prefix}-embedding", default="auto", choices=["auto", "cls", "mean", "cls+mean", "head"],
                   help="a hub teacher's embedding: auto (cls for a ViT, head otherwise), cls (the class token: "
                        "DINO/DINOv2's kNN), mean of patch tokens, cls+mean (DINOv2's linear evaluation), head "
                        "(timm's pooled output)")


def teacher_options(args: argparse.Namespace, prefix: str = "teacher"):
    """The ``--teacher-*`` (or ``--model-*``) flags as a :class:`distill.teachers.TeacherOptions`."""
    from distill.teachers import TeacherOptions, default_drop_heads  # torch: only when a command runs

    get = lambda name: getattr(args, f"{prefix}_{name}")  # noqa: E731
    return TeacherOptions(weights=get("weights"), arch=get("arch"), drop_head=default_drop_heads(get("drop_head")),
                          input_size=get("input_size"), mean=get("mean"), std=get("std"), embedding=get("embedding"))


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="compute threads (default: the CPUs this process may use, from its affinity mask and cgroup "
                        "quota); waiting threads sleep instead of spinning (distill.core.threads)")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The run-control flags that `train` and `pretrain` share (data pipeline, device, cadence, resume)."""
    p.add_argument("--limit", type=positive_int, metavar="N", help="train on a class-balanced subset of N images")
    p.add_argument("--in-memory", choices=["auto", "on", "off"], default="auto",
                   help="decode the images once and keep them in RAM (auto: when under 2 GiB)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="image-decoding processes")
    add_threads_flag(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=positive_int, default=20, help="steps between metrics lines")
    p.add_argument("--save-every", type=nonnegative_int, default=0, help="steps between mid-epoch checkpoints (0: "
                                                                         "epoch ends)")
    p.add_argument("--max-steps", type=positive_int, help="stop after N steps (smoke tests, fixed budgets)")
    p.add_argument("--time-budget", type=duration, metavar="T",
                   help="train for this long (300, 300s, 10m, 1.5h) instead of --epochs: the step count is planned "
                        "from the measured pace so that the learning-rate schedule still ends at zero")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--no-channels-last", action="store_true",
                   help="keep the student in NCHW (default NHWC, the faster layout for convolutions on CPU and GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the student (compiles for a while first)")
    p.add_argument("--log", type=_trackers, default=(), metavar="TRACKER[,...]",
                   help="also send the rows of metrics.jsonl to tensorboard (RUN_DIR/tensorboard), mlflow or wandb "
                        "(each an extra: pip install 'edgedistill[tensorboard]')")
    p.add_argument("--compile-mode", default="default", metavar="MODE",
                   help="with --compile: default, reduce-overhead (CUDA graphs, for launch-bound GPU steps) or "
                        "max-autotune")


# flags whose dest names a config field but means something else there (--augment is the preset's name, the
# config's `augment` its resolved fields)
NOT_FIELDS = ("augment", "loss_options", "teacher_options")


def same_named_fields(args: argparse.Namespace, config_cls) -> dict:
    """The parsed flags named like fields of ``config_cls`` (a dataclass), plus the two negated switches
    (``--no-amp``, ``--no-channels-last``): the hand-copied keyword list of the commands, once."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)} - set(NOT_FIELDS)
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(amp=not args.no_amp, channels_last=not args.no_channels_last)
    return values


def add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="start from a previous run's config.json (or a JSON/YAML file of the same keys); the flags "
                        "given here override it")


def train_config(args: argparse.Namespace, values: dict, *, loss_options: dict, teacher_options,
                 augmentation: str | None):
    """The TrainConfig of a command: ``values`` (same-named fields and the command's own) with its loss options,
    teacher options and augmentation preset; with ``--config FILE`` the file is the base and only the flags given
    on the command line (``args._given``) override it. A config without --data (or --teacher, for train) is one
    line naming the flag."""
    import dataclasses

    from distill.config import TrainConfig
    from distill.core.config_file import load_config_file
    from distill.core.errors import ConfigError

    if not getattr(args, "config", None):
        missing = [k for k in ("data", "teacher") if k in values and values[k] is None and k in _required(args)]
        if missing:
            raise ConfigError(f"{args.command} needs --{missing[0]} (or --config FILE naming it)")
        return TrainConfig(**values, loss_options=loss_options, teacher_options=teacher_options,
                           augmentation=augmentation)
    given = getattr(args, "_given", None)
    given = set(values) if given is None else given
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    base = TrainConfig.from_dict({"data": None, "teacher": None, **load_config_file(args.config, fields)})
    changes = {k: v for k, v in values.items() if k in given or k in _derived_given(given, k)}
    if given & {o for o in loss_options}:
        changes["loss_options"] = {**base.loss_options, **{k: v for k, v in loss_options.items() if k in given}}
    teacher_given = {k.split("_", 1)[1] for k in given if k.startswith("teacher_") and k != "teacher_cache"}
    if teacher_given:
        changes["teacher_options"] = dataclasses.replace(
            base.teacher_options, **{k: getattr(teacher_options, k) for k in teacher_given
                                     if hasattr(teacher_options, k)})
    if "augment" in given:
        changes.update(augmentation=augmentation, augment=None)
    cfg = dataclasses.replace(base, **changes)
    if cfg.data is None:
        raise ConfigError(f"--config '{args.config}' names no data; add --data DIR")
    return cfg


def _derived_given(given: set[str], key: str) -> set[str]:
    """The config fields set by a negated switch: --no-amp sets amp, --no-channels-last channels_last."""
    return {key} if (key == "amp" and "no_amp" in given) or (key == "channels_last" and "no_channels_last" in given) \
        else set()


def _required(args: argparse.Namespace) -> set[str]:
    return {"data", "teacher"} if args.command == "train" else {"data"}


def _trackers(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())
