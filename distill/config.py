"""Configuration of a distillation run.

:class:`TrainConfig` holds what the user asked for; :func:`resolve_config` turns it, with what the teacher and
the student are, into the *resolved* config (every ``auto``/``None`` default replaced by its value). The
trainer only reads a resolved config, never writes into it, and that config is saved in every checkpoint and
run folder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from distill.augment import AugmentConfig
from distill.core.errors import ConfigError
from distill.losses import LOSSES, loss_options
from distill.methods import HEADS, METHODS
from distill.teachers import TeacherOptions

# torch.compile's modes: reduce-overhead captures the step's kernels in CUDA graphs (the fix for launch-bound
# steps at small inputs on a GPU; on the CPU it compiles as default does)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass
class TrainConfig:
    """Every knob of ``edgedistill train``; each default carries its reason."""

    data: str  # folder of training images (labels not needed)
    teacher: str | None  # teacher spec, see distill.teachers.load_teacher; None for pretrain (mocov2, simclr)
    student: str = "mobilenetv3_large_100"  # SEED's student
    method: str = "seed"  # seed | compress | compress-1q | disco; without a teacher: mocov2 | simclr
    val: str | None = None  # labelled folder: kNN evaluation at the end, with `data` as the bank
    out: str | None = None  # run folder; default runs/<student>-<method>
    img_size: int | None = None  # student input; default: the teacher's input size
    epochs: int = 10
    batch_size: int = 256  # the papers' batch; global: split evenly over torchrun's processes
    lr: float | None = None  # default: base_lr * batch_size / 256 (linear scaling rule, global batch)
    base_lr: float = 0.05  # CompRess (0.05 per 256); MoCo-v2/SEED use 0.03 for 200 epochs
    momentum: float = 0.9  # SGD momentum, all three papers
    weight_decay: float = 1e-4  # all three papers
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to zero
    queue_size: int | None = None  # default: the method's (SEED/DisCo 65,536, CompRess 128,000)
    loss_options: dict[str, Any] = field(default_factory=dict)  # tau_s, tau_t, tau, temperature, mse_weight
    ema_momentum: float = 0.999  # CompRess-2q student bank and DisCo key encoder
    head: str = "auto"  # mlp | mlp4 | linear | none; auto: the method's row in distill.methods
    hidden_dim: int = 2048  # projection-head width: DisCo's "distilling bottleneck" finding
    embed_dim: int | None = None  # head output; default: the teacher's dim (head none: the backbone's)
    limit: int | None = None  # class-balanced subset of the training images
    in_memory: str = "auto"  # decode once into RAM: on | off | auto (when it fits in 2 GiB)
    device: str = "auto"  # cuda when available, else cpu
    workers: int = 2  # data-loader processes for decoding
    seed: int = 0
    log_every: int = 20  # steps between metrics.jsonl lines
    save_every: int = 0  # steps between mid-epoch checkpoints (0: epoch ends only)
    max_steps: int | None = None  # stop early (smoke tests, fixed budgets)
    time_budget: float | None = None  # seconds of training loop; replaces `epochs` (distill.schedule)
    amp: bool = True  # bf16/fp16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # NHWC student (CUDA and CPU; on the CPU 2.3x the NCHW step: docs/BENCHMARKS.md)
    compile: bool = False  # torch.compile the student + head (pays a compile time up front)
    compile_mode: str = "default"  # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune
    sync_bn: bool = False  # BatchNorm over the global batch under torchrun (distill.sync_bn)
    teacher_cache: str | None = None  # folder from `edgedistill cache-teacher`: no teacher forward passes
    knn_k: int = 20  # DINO's weighted kNN
    eval_every: int = 0  # steps between in-training kNN evaluations on `val` (0: only at the end)
    eval_bank: int = 5000  # class-balanced bank for the in-training kNN (a subset of `data`)
    eval_queries: int = 2000  # class-balanced queries for the in-training kNN (a subset of `val`)
    knn_t: float = 0.07
    augmentation: str = "auto"  # mocov2 | light | none | auto (light up to 64 px: see AugmentConfig.light)
    augment: AugmentConfig | None = None  # resolved from `augmentation` unless given field by field
    teacher_center: bool = False  # subtract the teacher's mean embedding (estimated on 2,048 images) before the loss
    log: tuple[str, ...] = ()  # experiment trackers fed the rows of metrics.jsonl (distill.trackers): tensorboard...
    teacher_options: TeacherOptions = field(default_factory=TeacherOptions)  # the --teacher-* flags

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """A config from :meth:`to_dict`; configs saved before ``teacher_options`` (six flat ``teacher_*``
        fields) still load."""
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        aug = d.pop("augment", None) or {}
        teacher = dict(d.pop("teacher_options", None) or {})
        for key in ("weights", "arch", "drop_head", "input_size", "mean", "std"):
            if f"teacher_{key}" in d:
                teacher.setdefault(key, d.pop(f"teacher_{key}"))
        teacher = {k: tuple(v) if isinstance(v, list) else v for k, v in teacher.items()}
        d = {k: v for k, v in d.items() if k in known}
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        return cls(augment=AugmentConfig(**aug) if aug else None, teacher_options=TeacherOptions(**teacher), **d)

    def validate(self) -> None:
        from distill.trackers import check_trackers

        check_trackers(tuple(self.log))  # before anything is built: a missing tracker is one line naming its extra
        if self.method not in LOSSES:
            raise ConfigError(f"unknown method '{self.method}'; valid methods: {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "hidden_dim", "workers", "log_every"):
            value = getattr(self, name)
            if value is None or value < (0 if name == "workers" else 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be {'>= 0' if name == 'workers' else 'positive'}, "
                                  f"got {value}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"--time-budget must be positive, got {self.time_budget}")
        if self.eval_every < 0 or self.eval_bank < 1 or self.eval_queries < 1:
            raise ConfigError("--eval-every must be >= 0 and --eval-bank/--eval-queries positive")
        if self.eval_every and not self.val:
            raise ConfigError("--eval-every needs a labelled --val folder to measure the student on")
        if self.head != "auto" and self.head not in HEADS:
            raise ConfigError(f"unknown head '{self.head}'; valid heads: auto, {', '.join(HEADS)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"unknown --compile-mode '{self.compile_mode}'; valid: {', '.join(COMPILE_MODES)}")
        if self.in_memory not in ("on", "off", "auto"):
            raise ConfigError(f"--in-memory must be on, off or auto, got '{self.in_memory}'")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigError(f"--ema-momentum must be in [0, 1), got {self.ema_momentum}")
        needs_teacher = LOSSES[self.method].needs_teacher
        if needs_teacher and not self.teacher:
            raise ConfigError(f"method '{self.method}' distils a teacher: pass --teacher (or use pretrain --method "
                              "mocov2|simclr)")
        if not needs_teacher and (self.teacher_cache or self.teacher_center):
            raise ConfigError(f"method '{self.method}' trains without a teacher: drop --teacher-cache/--teacher-center")
        valid = loss_options(self.method)
        if self.queue_size is not None and "queue_size" not in valid:
            raise ConfigError(f"method '{self.method}' has no queue: drop --queue-size")
        unknown = sorted(set(self.loss_options) - set(valid))
        if unknown:
            raise ConfigError(f"option {', '.join(unknown)} does not apply to method '{self.method}' "
                              f"(its options: {', '.join(valid)})")

    def resolved_loss_options(self) -> dict[str, Any]:
        """The method's defaults, overridden by ``queue_size`` and ``loss_options``."""
        opts = dict(loss_options(self.method))
        opts.update(self.loss_options)
        if self.queue_size is not None:
            opts["queue_size"] = self.queue_size
        return opts


MAX_DEFAULT_IMG_SIZE = 224  # the student's default input is at most this (a DINOv2 teacher is built at 518)


def default_img_size(teacher_input_size: int, data_size: int | None) -> int:
    """The student's input size when --img-size is not given: the teacher's, but at most 224 and at most the data's
    own image size (a 32 px CIFAR image is not upsampled for the student because the teacher sees 224)."""
    return min(teacher_input_size, MAX_DEFAULT_IMG_SIZE, data_size or teacher_input_size)


def resolve_config(cfg: TrainConfig, *, teacher_dim: int, teacher_input_size: int,
                   student_features: Callable[[int], int], data_size: int | None = None) -> TrainConfig:
    """The resolved copy of ``cfg`` (``cfg`` itself is left as it is): student input size, head, embedding
    size, loss options and queue, learning rate and augmentation filled in.

    ``teacher_dim`` is 0 without a teacher (pretrain); ``teacher_input_size`` is the teacher's input size (or
    the pretraining default); ``student_features(img_size)`` is the student backbone's width at that size;
    ``data_size`` the images' own size (shorter side), which caps the default input size (:func:`default_img_size`).
    """
    cfg.validate()
    img_size = cfg.img_size or default_img_size(teacher_input_size, data_size)
    head = cfg.head if cfg.head != "auto" else METHODS[cfg.method].head
    embed_dim = cfg.embed_dim
    if head == "none":
        width = student_features(img_size)
        if embed_dim not in (None, width):
            raise ConfigError(f"--head none keeps the backbone's {width} dimensions; drop --embed-dim {embed_dim} "
                              "or choose --head mlp|linear")
        embed_dim = width
    elif embed_dim is None:
        embed_dim = 128 if cfg.method == "compress-1q" or not teacher_dim else teacher_dim
    options = cfg.resolved_loss_options()
    return dataclasses.replace(
        cfg, img_size=img_size, head=head, embed_dim=embed_dim, queue_size=options.pop("queue_size", None),
        loss_options=options, lr=cfg.lr if cfg.lr is not None else cfg.base_lr * cfg.batch_size / 256,
        augment=cfg.augment if cfg.augment is not None else AugmentConfig.preset(cfg.augmentation, img_size))
