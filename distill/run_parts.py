"""Building a run's parts from a config: the folder, the teacher (or its cache), the student with its head and
the wrappers it trains through, the loss, the momentum student, the optimiser and the augmentation.

:func:`build_parts` is the first of the trainer's three units (timm's train.py builds its model, loss and optimiser
before its loop the same way): the step (:mod:`distill.step`) uses the parts, the loop (:mod:`distill.trainer`)
saves and restores them. Tools that time or probe a training step (tools/bench_training.py) build the parts the
same way and use their public fields.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from distill.augment import AugmentConfig, BatchAugment
from distill.config import TrainConfig, resolve_config
from distill.core.errors import ConfigError
from distill.core.log import log
from distill.core.images import ImageFolder, native_size, scan_folder
from distill.core.preprocess import Preprocess
from distill.distributed import DistContext, gather_cat
from distill.heads import StudentWithHead, create_head
from distill.losses import DistillLoss, create_loss
from distill.momentum import MomentumEncoder
from distill.students import Student, create_student
from distill.sync_bn import convert_sync_batchnorm
from distill.teacher_cache import TeacherCache, cache_fingerprint
from distill.teachers import load_teacher


@dataclass
class RunParts:
    cfg: TrainConfig  # resolved (distill.config.resolve_config)
    dist: DistContext
    device: torch.device
    local_batch: int  # this process's share of the global batch
    folder: ImageFolder
    teacher: object | None  # distill.teachers.Teacher; None for pretrain
    teacher_pre: Preprocess  # the teacher's (pretrain: the normalisation the student trains with)
    student_pre: Preprocess  # what the deployed student expects (saved in student.pt)
    load_size: int  # the decode size: max(student, teacher input)
    cache: TeacherCache | None
    model: StudentWithHead  # student + head, the trained weights
    forward: nn.Module  # what the step calls: model behind DDP and/or torch.compile
    loss: DistillLoss
    momentum: MomentumEncoder | None
    optimizer: torch.optim.Optimizer
    amp_dtype: torch.dtype | None  # autocast on CUDA (bf16, else fp16)
    scaler: torch.amp.GradScaler
    augment: BatchAugment

    @property
    def teacher_dim(self) -> int:
        return self.teacher.embedding_dim if self.teacher is not None else 0


def build_parts(cfg: TrainConfig, dist: DistContext, device: torch.device) -> RunParts:
    """Every part of a run for ``cfg`` (validated and resolved here), on ``device``."""
    cfg.validate()
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} (the global batch) must divide evenly over "
                          f"{dist.world_size} processes")
    folder = scan_folder(cfg.data, cfg.limit)  # cheap, and the likeliest user error: check it first
    teacher = None  # a self-supervised baseline (pretrain) has none
    if cfg.teacher is not None:
        teacher = load_teacher(cfg.teacher, cfg.teacher_options, device)
        t_pre = teacher.preprocess
    else:
        opts = cfg.teacher_options
        t_pre = Preprocess(input_size=cfg.img_size or 224, **{k: v for k, v in (
            ("mean", opts.mean), ("std", opts.std)) if v is not None})
    teacher_dim = teacher.embedding_dim if teacher else 0
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    students: dict[int, Student] = {}

    def features(img_size: int) -> int:
        students[img_size] = create_student(cfg.student, img_size=img_size)
        return students[img_size].num_features

    asked = cfg.img_size
    cfg = resolve_config(cfg, teacher_dim=teacher_dim, teacher_input_size=t_pre.input_size,
                         student_features=features, data_size=native_size(folder))
    if asked is None and cfg.img_size != t_pre.input_size and dist.rank == 0:
        log.info(f"student input {cfg.img_size} px (the teacher's {t_pre.input_size} px capped at 224 and at the "
                 "images' own size; --img-size sets it), both from the same images")
    load_size = max(cfg.img_size, t_pre.input_size)
    cache = open_cache(cfg, teacher, folder, load_size) if cfg.teacher_cache else None
    student = students.get(cfg.img_size) or create_student(cfg.student, img_size=cfg.img_size)
    model = StudentWithHead(student, create_head(cfg.head, student.num_features, cfg.hidden_dim, cfg.embed_dim))
    if cfg.sync_bn and dist.enabled:
        model = convert_sync_batchnorm(model, device)
    model.to(device)
    if cfg.channels_last:  # NHWC: oneDNN's (CPU) and cuDNN's fast convolution layout (docs/BENCHMARKS.md)
        model.to(memory_format=torch.channels_last)
    forward = model
    if dist.enabled:
        forward = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        forward = torch.compile(forward, mode=cfg.compile_mode)
    loss = create_loss(cfg.method, student_dim=cfg.embed_dim, teacher_dim=teacher_dim,
                       gather=gather_cat if dist.enabled else None, **cfg.resolved_loss_options()).to(device)
    momentum = MomentumEncoder(model, cfg.ema_momentum).to(device) if loss.momentum_views else None
    params = list(model.parameters()) + list(loss.parameters())
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    amp_dtype = None
    if device.type == "cuda" and cfg.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return RunParts(
        cfg=cfg, dist=dist, device=device, local_batch=cfg.batch_size // dist.world_size, folder=folder,
        teacher=teacher, teacher_pre=t_pre,
        student_pre=Preprocess.for_student(cfg.img_size, mean=t_pre.mean, std=t_pre.std),
        load_size=load_size, cache=cache, model=model, forward=forward, loss=loss, momentum=momentum,
        optimizer=optimizer, amp_dtype=amp_dtype,
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        augment=BatchAugment(cfg.augment, load_size))


def open_cache(cfg: TrainConfig, teacher, folder: ImageFolder, load_size: int) -> TeacherCache:
    """Open ``--teacher-cache`` and refuse it unless teacher, data and decode size match this run."""
    cache = TeacherCache(cfg.teacher_cache, folder)
    covered = cache.covered(scan_folder(cfg.data) if cfg.limit else folder)
    expected = cache_fingerprint(teacher, covered, load_size, 1, AugmentConfig.none(), 0)
    del expected["views"]  # the view recipe is the cache's own choice
    cache.check(expected)
    return cache
