"""The training loop: a frozen teacher, a student with a projection head, one of the registered losses.

The same loop trains the self-supervised baselines (``pretrain``: MoCo-v2, SimCLR), whose losses need no
teacher; the data pipeline, checkpoints and evaluation are then identical to distillation's.

One step: augment a uint8 batch on the device (the same view for teacher and student, each resized to its own
input size and normalised with its own statistics), embed it with the teacher (no gradients), embed it with
the student (+ head) and, where the loss asks for it, with the momentum student; take an SGD step; update the
momentum student.

With ``--teacher-cache`` the teacher's embeddings are read from a :mod:`distill.teacher_cache` instead of
computed. Under torchrun (``WORLD_SIZE`` > 1) the student is wrapped in DistributedDataParallel, each rank
takes its share of the global batch, and the queues are filled with embeddings gathered from all ranks; only
rank 0 writes files. SIGINT/SIGTERM save a checkpoint before stopping (:mod:`distill.stopping`).

Run folder: ``config.json`` (resolved config), ``checkpoint.pt`` (full training state, for ``--resume``),
``student.pt`` (deployable student), ``metrics.jsonl`` (loss, lr, images/s per logging step), ``summary.json``
(run summary and final evaluation).
"""
from __future__ import annotations

import json
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from distill.augment import AugmentConfig, BatchAugment, resize_views
from distill.batches import BatchStream, MemoryImages, estimate_bytes
from distill.checkpoint import STUDENT_FILE, TRAIN_STATE_FILE, head_entry, save_student
from distill.config import TrainConfig, resolve_config
from distill.core.atomic import atomic_torch_save, atomic_write_json
from distill.core.device import resolve_device
from distill.core.errors import CheckpointError, ConfigError, TrainingError, first_line
from distill.core.images import native_size, scan_folder
from distill.core.preprocess import Preprocess
from distill.core.progress import progress
from distill.curves import plot_run
from distill.distributed import DistContext, any_rank, gather_cat, mean_across_ranks, min_across_ranks
from distill.heads import StudentWithHead, create_head
from distill.losses import create_loss
from distill.momentum import MomentumEncoder
from distill.monitor import KnnMonitor
from distill.resume import changed_options, last_logged_loss
from distill.schedule import Schedule, TimeBudget
from distill.stopping import StopSignals, TrainingInterrupted
from distill.students import Student, create_student
from distill.sync_bn import convert_sync_batchnorm
from distill.teacher_cache import TeacherCache, cache_fingerprint
from distill.teachers import TorchTeacher, load_teacher

IN_MEMORY_AUTO_BYTES = 2 << 30


class Trainer:
    """Builds everything a run needs from a :class:`TrainConfig`; :meth:`fit` trains and returns the summary."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, dist: DistContext = DistContext(),
                 device: torch.device | None = None):
        cfg.validate()
        self.dist, self.rank, self.world_size = dist, dist.rank, dist.world_size
        if cfg.batch_size % dist.world_size:
            raise ConfigError(f"--batch-size {cfg.batch_size} (the global batch) must divide evenly over "
                              f"{dist.world_size} processes")
        self.local_batch = cfg.batch_size // dist.world_size
        self.device = device or resolve_device(cfg.device)
        self.out = Path(cfg.out or f"runs/{cfg.student.replace(':', '_')}-{cfg.method}")
        self._check_run_folder(resume)
        self.folder = scan_folder(cfg.data, cfg.limit)  # cheap, and the likeliest user error: check it first
        self.teacher = None  # a self-supervised baseline (pretrain) has none
        if cfg.teacher is not None:
            self.teacher = load_teacher(cfg.teacher, cfg.teacher_options, self.device)
            t_pre = self.teacher.preprocess
        else:
            opts = cfg.teacher_options
            t_pre = Preprocess(input_size=cfg.img_size or 224, **{k: v for k, v in (
                ("mean", opts.mean), ("std", opts.std)) if v is not None})
        teacher_dim = self.teacher.embedding_dim if self.teacher else 0
        torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
        students: dict[int, Student] = {}

        def features(img_size: int) -> int:
            students[img_size] = create_student(cfg.student, img_size=img_size)
            return students[img_size].num_features

        asked = cfg.img_size
        self.cfg = cfg = resolve_config(cfg, teacher_dim=teacher_dim, teacher_input_size=t_pre.input_size,
                                        student_features=features, data_size=native_size(self.folder))
        if asked is None and cfg.img_size != t_pre.input_size and self.rank == 0:
            print(f"student input {cfg.img_size} px (the teacher's {t_pre.input_size} px capped at 224 and at the "
                  "images' own size; --img-size sets it), both from the same images", file=sys.stderr, flush=True)
        self.t_pre = t_pre
        self.student_pre = Preprocess(input_size=cfg.img_size, mean=t_pre.mean, std=t_pre.std,
                                      crop_pct=1.0 if cfg.img_size <= 64 else 0.875)
        self.load_size = max(cfg.img_size, t_pre.input_size)
        self.cache = self._open_cache() if cfg.teacher_cache else None
        student = students.get(cfg.img_size) or create_student(cfg.student, img_size=cfg.img_size)
        self.model = StudentWithHead(student, create_head(cfg.head, student.num_features, cfg.hidden_dim,
                                                          cfg.embed_dim))
        if cfg.sync_bn and dist.enabled:
            self.model = convert_sync_batchnorm(self.model, self.device)
        self.model.to(self.device)
        if cfg.channels_last:  # NHWC: oneDNN's (CPU) and cuDNN's fast convolution layout (docs/BENCHMARKS.md)
            self.model.to(memory_format=torch.channels_last)
        self.forward = self.model  # what train_step calls: DDP and/or compiled wrappers of self.model
        if dist.enabled:
            self.forward = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.forward = torch.compile(self.forward, mode=cfg.compile_mode)
        self.loss = create_loss(cfg.method, student_dim=cfg.embed_dim, teacher_dim=teacher_dim,
                                gather=gather_cat if dist.enabled else None,
                                **cfg.resolved_loss_options()).to(self.device)
        self.momentum = (MomentumEncoder(self.model, cfg.ema_momentum).to(self.device)
                         if self.loss.momentum_views else None)
        params = list(self.model.parameters()) + list(self.loss.parameters())
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.amp_dtype = None
        if self.device.type == "cuda" and cfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.augment = BatchAugment(cfg.augment, self.load_size)
        self.center = torch.zeros(max(teacher_dim, 1), device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed * 1000 + self.rank)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.elapsed = 0.0  # seconds inside train_step
        self.wall = 0.0  # seconds of the training loop (evaluations and checkpoints included): --time-budget
        self.images_seen = 0
        # the first non-finite loss (step, value), recorded on the device so that no step waits for the GPU
        self.bad_loss = torch.tensor([-1.0, 0.0], device=self.device)
        self.graph_steps = cfg.compile and cfg.compile_mode == "reduce-overhead" and self.device.type == "cuda"
        if resume:
            self._load_state()

    # -- run folder ---------------------------------------------------------------------------------------
    def _check_run_folder(self, resume: bool) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise CheckpointError(f"--out '{self.out}' is a file, not a run folder; choose another --out")
        state = self.out / TRAIN_STATE_FILE
        if resume and not state.is_file():
            raise CheckpointError(f"--resume: '{self.out}' holds no {TRAIN_STATE_FILE} to continue from; drop --resume to start")
        if not resume and (state.is_file() or (self.out / STUDENT_FILE).is_file()):
            raise CheckpointError(f"run folder '{self.out}' already holds a run; pass --resume to continue it "
                                  "or --out NEW_FOLDER for a new one")

    def _open_cache(self) -> TeacherCache:
        """Open ``--teacher-cache`` and refuse it unless teacher, data and decode size match this run."""
        cfg = self.cfg
        cache = TeacherCache(cfg.teacher_cache, self.folder)
        covered = cache.covered(scan_folder(cfg.data) if cfg.limit else self.folder)
        expected = cache_fingerprint(self.teacher, covered, self.load_size, 1, AugmentConfig.none(), 0)
        del expected["views"]  # the view recipe is the cache's own choice
        cache.check(expected)
        return cache

    def _teacher_fingerprint(self) -> str | None:
        return self.teacher.fingerprint() if self.teacher is not None else None

    def _state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(), "model": self.model.state_dict(), "loss": self.loss.state_dict(),
            "momentum": self.momentum.state_dict() if self.momentum else None,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "elapsed": self.elapsed, "wall": self.wall, "images_seen": self.images_seen,
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "center": self.center, "teacher_fingerprint": self._teacher_fingerprint(), "data_fingerprint": self.folder.fingerprint(),
            "world_size": self.world_size,
        }

    def _load_state(self) -> None:
        path = self.out / TRAIN_STATE_FILE
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read '{path}' ({str(exc).splitlines()[0]}); it may be from another version") from None
        changed = changed_options(state["config"], self.cfg.to_dict())
        if changed:
            raise CheckpointError(f"--resume: '{path}' was trained with other settings ({'; '.join(changed[:4])}); "
                                  "resume with the same ones, or train into a new --out")
        if state["teacher_fingerprint"] != self._teacher_fingerprint():
            raise CheckpointError(f"--resume: '{path}' was trained with another teacher; pass the same --teacher")
        if state["data_fingerprint"] != self.folder.fingerprint():
            raise CheckpointError(f"--resume: the images under '{self.cfg.data}' changed since '{path}' was written")
        try:
            self.center = state["center"].to(self.device)
            self.model.load_state_dict(state["model"])
            self.loss.load_state_dict(state["loss"])
            if self.momentum is not None:
                self.momentum.load_state_dict(state["momentum"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as exc:  # torch's state-dict mismatch: a C++-sized message
            raise CheckpointError(f"--resume: '{path}' does not fit this run's model or loss "
                                  f"({type(exc).__name__}: {first_line(exc)[:160]}); resume with "
                                  "the settings it was trained with, or train into a new --out") from None
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.elapsed, self.images_seen = state["elapsed"], state["images_seen"]
        self.wall = state.get("wall", state["elapsed"])  # checkpoints before --time-budget: the step time
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())

    def _student_step(self) -> int | None:
        """The step of the run's student.pt (None when it is missing or unreadable): checkpoint.pt is the run's
        switch, and student.pt is rebuilt from it when it lags behind."""
        try:
            return int(torch.load(self.out / STUDENT_FILE, map_location="cpu", weights_only=True)["step"])
        except Exception:  # missing, truncated, or from another version
            return None

    def save(self) -> None:
        self.check_loss()  # never overwrite the last good checkpoint with weights a non-finite loss reached
        if self.rank != 0:
            return
        atomic_torch_save(self._state(), self.out / TRAIN_STATE_FILE)
        head = head_entry(self.model.head, self.cfg.head, self.cfg.hidden_dim, self.cfg.embed_dim)
        save_student(self.out / STUDENT_FILE, self.model.student, self.student_pre, self.cfg.to_dict(),
                     {"teacher": self.cfg.teacher, "method": self.cfg.method, "step": self.step, "head": head,
                      "teacher_licence": getattr(self.teacher, "licence", None)})

    # -- data -----------------------------------------------------------------------------------------------
    def batch_stream(self) -> BatchStream:
        """The run's stream of training batches (decoded into memory when it fits): what fit() iterates."""
        cfg = self.cfg
        use_memory = cfg.in_memory == "on" or (
            cfg.in_memory == "auto" and estimate_bytes(len(self.folder), self.load_size) <= IN_MEMORY_AUTO_BYTES)
        memory = MemoryImages(self.folder, self.load_size, workers=cfg.workers) if use_memory else None
        stream = BatchStream(self.folder, self.load_size, self.local_batch, memory=memory, workers=cfg.workers,
                             pin_memory=self.device.type == "cuda", seed=cfg.seed, rank=self.rank,
                             world_size=self.world_size)
        if stream.batches_per_epoch() == 0:
            raise ConfigError(f"{len(self.folder)} readable images make no full batch of {self.local_batch}; "
                              "lower --batch-size")
        return stream

    # -- one step -------------------------------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        """One optimisation step on a (B, 3, S, S) uint8 batch; ``indices`` (B,) are folder positions (needed
        with a teacher cache). Returns the loss as a 0-d tensor on the device: reading it (``float``) waits
        for the step, so the loop reads it only at logging steps, and the GPU runs behind the Python code."""
        cfg, t_pre, s_pre = self.cfg, self.t_pre, self.student_pre
        if self.graph_steps:  # a new iteration for CUDA graph trees (the previous step's outputs may be reused)
            torch.compiler.cudagraph_mark_step_begin()
        images = images.to(self.device, non_blocking=True)
        b = images.shape[0]
        views = [self.augment(images, self.generator) for _ in range(self.loss.views)]
        s_views = [s_pre.normalize(resize_views(v, s_pre.input_size)) for v in views]
        if cfg.channels_last:
            s_views = [v.contiguous(memory_format=torch.channels_last) for v in s_views]
        student_views = self.loss.student_views or range(self.loss.views)
        s_in = torch.cat([s_views[v] for v in student_views])
        autocast = (torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype else nullcontext())
        if not self.loss.needs_teacher:
            teacher_emb = None
        elif self.cache is not None:
            teacher_emb = self.cache.lookup(indices, self.loss.views, self.generator, self.device) - self.center
        else:
            t_in = torch.cat([t_pre.normalize(resize_views(v, t_pre.input_size)) for v in views])
            if cfg.channels_last and isinstance(self.teacher, TorchTeacher):  # 1.3x a ResNet-56 forward on the CPU
                t_in = t_in.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), autocast:
                teacher_emb = (self.teacher(t_in).float() - self.center).view(self.loss.views, b, -1)
        with autocast:
            student_emb = self.forward(s_in).float().view(len(student_views), b, -1)
            momentum_emb = None
            if self.momentum is not None:
                momentum_emb = torch.stack([self.momentum(s_views[v], self.generator).float()
                                            for v in self.loss.momentum_views])
        loss = self.loss(student_emb, teacher_emb, momentum_emb)
        self.update(loss)
        if self.momentum is not None:
            self.momentum.update(self.model)  # same gradients on every rank -> the same EMA everywhere
        loss = loss.detach().float()
        first = (self.bad_loss[0] < 0) & ~torch.isfinite(loss)
        # new_full is a fill kernel: no host-to-device copy, which from pageable memory would wait for the GPU
        self.bad_loss = torch.where(first, torch.stack([loss.new_full((), float(self.step)), loss]), self.bad_loss)
        return loss

    def check_loss(self) -> None:
        """Raise if a step since the start had a non-finite loss (one read of a device tensor)."""
        step, value = self.bad_loss.tolist()
        if step >= 0:
            raise TrainingError(f"non-finite loss ({value}) at step {int(step)}; the last good checkpoint in "
                                f"'{self.out}' is intact; lower --lr or check the teacher's outputs")

    def update(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (through the grad scaler; DDP all-reduces the gradients in backward)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @torch.no_grad()
    def estimate_center(self, stream: BatchStream, num_images: int = 2048) -> torch.Tensor:
        """The teacher's mean embedding over the first images of the data (the same on every rank)."""
        if self.cache is not None:
            return self.cache.mean(np.arange(min(num_images, len(self.folder)))).to(self.device)
        t_pre, total, count = self.teacher.preprocess, None, 0
        order = BatchStream(self.folder, self.load_size, 256, memory=stream.memory, workers=self.cfg.workers,
                            drop_last=False, shuffle=False)
        for batch in order.epoch(0):
            x = t_pre.normalize(resize_views(batch.images.to(self.device).float().div_(255), t_pre.input_size))
            emb = self.teacher(x).float()
            total = emb.sum(0) if total is None else total + emb.sum(0)
            count += emb.shape[0]
            if count >= num_images:
                break
        return total / count

    # -- loop -----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        cfg, main = self.cfg, self.rank == 0
        self.out.mkdir(parents=True, exist_ok=True)
        if main:
            atomic_write_json(self.out / "config.json", cfg.to_dict())
        stream = self.batch_stream()
        if cfg.teacher_center and self.step == 0:
            self.center = self.estimate_center(stream)
        per_epoch = stream.batches_per_epoch()
        schedule = Schedule(per_epoch, cfg.epochs, cfg.warmup_epochs, cfg.lr, cfg.max_steps)
        self.model.train()
        metrics = open(self.out / "metrics.jsonl", "a") if main else None
        monitor = self._monitor() if main else None
        if monitor is not None and self.step == 0:
            self._evaluate(monitor, metrics)
        bar = progress(total=schedule.total, initial=self.step, desc=f"{cfg.method} {cfg.student}", unit="step",
                       disable=not main)
        window_t, window_n, last_loss = time.perf_counter(), 0, float("nan")
        session_t, session_wall = time.perf_counter(), self.wall
        if cfg.time_budget:
            schedule.start_budget(TimeBudget(cfg.time_budget, used=self.wall))
        try:
            with StopSignals() as stop:
                while self.step < schedule.total:
                    completed = True
                    for batch in stream.epoch(self.epoch, self.batch_in_epoch):
                        if self.step >= schedule.total:
                            completed = False
                            break
                        lr = schedule.lr(self.step)
                        for group in self.optimizer.param_groups:
                            group["lr"] = lr
                        t0 = time.perf_counter()
                        loss = self.train_step(batch.images, batch.indices)
                        self.step, self.batch_in_epoch = self.step + 1, self.batch_in_epoch + 1
                        logging = self.step % cfg.log_every == 0
                        if self.world_size == 1 or logging:  # torchrun: the ranks agree on the plan when logging
                            schedule.tick(self.step, logging)
                            if self.world_size > 1 and schedule.budget is not None:
                                schedule.set_total(min_across_ranks(schedule.total, self.device))
                        log = logging or self.step == schedule.total
                        if log:  # the one wait for the device: the steps since the last one are done here
                            loss = float(loss)
                        self.elapsed += time.perf_counter() - t0
                        n = batch.images.shape[0] * self.world_size
                        self.images_seen += n
                        window_n += n
                        bar.update(1)
                        self.wall = session_wall + time.perf_counter() - session_t
                        if log:
                            self.check_loss()
                            last_loss = mean_across_ranks(loss, self.device)
                            bar.total = schedule.total
                            now = time.perf_counter()
                            ips = window_n / max(now - window_t, 1e-9)
                            window_t, window_n = now, 0
                            bar.set_postfix(epoch=self.epoch, loss=f"{last_loss:.4f}", img_s=f"{ips:.0f}")
                            if metrics:
                                metrics.write(json.dumps({"step": self.step, "epoch": self.epoch, "loss": last_loss,
                                                          "lr": lr, "images_per_s": ips, "images_seen": self.images_seen,
                                                          "elapsed_s": round(self.elapsed, 3)}) + "\n")
                                metrics.flush()
                        if monitor is not None and (self.step % cfg.eval_every == 0 or self.step == schedule.total):
                            self._evaluate(monitor, metrics)
                            window_t = time.perf_counter()  # the evaluation is not training time
                        if cfg.save_every and self.step % cfg.save_every == 0:
                            self.save()
                        if any_rank(stop.received is not None, self.device):
                            self._stop_on_signal(stop.received, stream, per_epoch)
                    if completed:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    self.save()
            self.check_loss()
            if main and self._student_step() != self.step:  # the last save was cut short after checkpoint.pt
                self.save()
        finally:
            bar.close()
            if metrics:
                metrics.close()
        if last_loss != last_loss:  # no logging step this session (--resume of a finished run): the last logged
            last_loss = last_logged_loss(self.out / "metrics.jsonl")
        if main and cfg.eval_every:
            plot_run(self.out)
        return {
            "run_dir": str(self.out), "student": cfg.student, "method": cfg.method, "teacher": cfg.teacher,
            "steps": self.step, "epochs_done": self.epoch, "images_seen": self.images_seen,
            "num_images": len(self.folder), "num_skipped": len(stream.skipped),
            "train_seconds": round(self.elapsed, 2), "world_size": self.world_size,
            "images_per_s": round(self.images_seen / max(self.elapsed, 1e-9), 1), "final_loss": last_loss,
        }

    def _monitor(self) -> KnnMonitor | None:
        cfg = self.cfg
        if not cfg.eval_every:
            return None
        return KnnMonitor(cfg.data, cfg.val, self.student_pre, bank_size=cfg.eval_bank, num_queries=cfg.eval_queries,
                          k=cfg.knn_k, t=cfg.knn_t, workers=cfg.workers)

    def _evaluate(self, monitor: KnnMonitor, metrics) -> None:
        """One in-training kNN point (student backbone, eval mode) as a ``"kind": "knn"`` line of metrics.jsonl."""
        t0 = time.perf_counter()
        result = monitor(self.model.student, self.device)
        row = {"kind": "knn", "step": self.step, "epoch": self.epoch, "images_seen": self.images_seen,
               **{k: round(v, 5) for k, v in result.items()}, "eval_s": round(time.perf_counter() - t0, 2)}
        if metrics:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()

    def _stop_on_signal(self, signum: int | None, stream: BatchStream, per_epoch: int) -> None:
        """Save where the run stands (the sampler position included) and stop with 128 + signal."""
        if self.batch_in_epoch >= per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.save()
        signum = signum or signal.SIGTERM  # another rank received it
        name = signal.Signals(signum).name
        raise TrainingInterrupted(f"stopped by {name} at step {self.step}; checkpoint saved in '{self.out}'; "
                                  "continue with --resume", signum)
