"""Configuration of a distillation run. The resolved config is saved in every checkpoint and run folder."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from distill.augment import AugmentConfig
from distill.errors import ConfigError
from distill.losses import LOSSES, loss_options


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
    hidden_dim: int = 2048  # projection-head width: DisCo's "distilling bottleneck" finding
    embed_dim: int | None = None  # projection output; default: the teacher's dim (compress-1q: 128)
    limit: int | None = None  # class-balanced subset of the training images
    in_memory: str = "auto"  # decode once into RAM: on | off | auto (when it fits in 2 GiB)
    device: str = "auto"  # cuda when available, else cpu
    workers: int = 2  # data-loader processes for decoding
    seed: int = 0
    log_every: int = 20  # steps between metrics.jsonl lines
    save_every: int = 0  # steps between mid-epoch checkpoints (0: epoch ends only)
    max_steps: int | None = None  # stop early (smoke tests, fixed budgets)
    amp: bool = True  # bf16/fp16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the student + head (pays a compile time up front)
    sync_bn: bool = False  # BatchNorm over the global batch under torchrun (distill.sync_bn)
    teacher_cache: str | None = None  # folder from `edgedistill cache-teacher`: no teacher forward passes
    knn_k: int = 20  # DINO's weighted kNN
    knn_t: float = 0.07
    augmentation: str = "auto"  # mocov2 | light | none | auto (light up to 64 px: see AugmentConfig.light)
    augment: AugmentConfig | None = None  # resolved from `augmentation` unless given field by field
    teacher_center: bool = False  # subtract the teacher's mean embedding (estimated on 2,048 images) before the loss
    teacher_weights: str | None = None
    teacher_arch: str | None = None
    teacher_drop_head: tuple[str, ...] = ()
    teacher_input_size: int | None = None
    teacher_mean: tuple[float, ...] | None = None
    teacher_std: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"] = asdict(self.augment) if self.augment is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        aug = d.pop("augment", None) or {}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("teacher_drop_head", "teacher_mean", "teacher_std"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        return cls(augment=AugmentConfig(**aug) if aug else None, **d)

    def validate(self) -> None:
        if self.method not in LOSSES:
            raise ConfigError(f"unknown method '{self.method}'; valid methods: {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "hidden_dim", "workers", "log_every"):
            value = getattr(self, name)
            if value is None or value < (0 if name == "workers" else 1):
                raise ConfigError(f"--{name.replace('_', '-')} must be {'>= 0' if name == 'workers' else 'positive'}, got {value}")
        if self.in_memory not in ("on", "off", "auto"):
            raise ConfigError(f"--in-memory must be on, off or auto, got '{self.in_memory}'")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigError(f"--ema-momentum must be in [0, 1), got {self.ema_momentum}")
        needs_teacher = LOSSES[self.method].needs_teacher
        if needs_teacher and not self.teacher:
            raise ConfigError(f"method '{self.method}' distils a teacher: pass --teacher (or use pretrain --method mocov2|simclr)")
        if not needs_teacher and (self.teacher_cache or self.teacher_center):
            raise ConfigError(f"method '{self.method}' trains without a teacher: drop --teacher-cache/--teacher-center")
        valid = loss_options(self.method)
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
