"""The training loop: a frozen teacher, a student with a projection head, one of the registered losses.

The same loop trains the self-supervised baselines (``pretrain``: MoCo-v2, SimCLR), whose losses need no
teacher; the data pipeline, checkpoints and evaluation are then identical to distillation's. Three units, as in
timm's training script: :mod:`distill.run_parts` builds the run's parts, :mod:`distill.step` takes one step,
and this module's :class:`Trainer` loops (schedule, logging, evaluation, saving, resume, signals).

With ``--teacher-cache`` the teacher's embeddings are read from a :mod:`distill.teacher_cache` instead of
computed. Under torchrun (``WORLD_SIZE`` > 1) the student is wrapped in DistributedDataParallel, each rank
takes its share of the global batch, and the queues are filled with embeddings gathered from all ranks; only
rank 0 writes files. SIGINT/SIGTERM save a checkpoint before stopping (:mod:`distill.stopping`).

Run folder: ``config.json`` (resolved config), ``checkpoint.pt`` (full training state, for ``--resume``),
``student.pt`` (deployable student), ``metrics.jsonl`` (loss, lr, images/s per logging step), ``summary.json``
(run summary and final evaluation).
"""
from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import torch

from distill.batches import BatchStream, MemoryImages, estimate_bytes
from distill.config import TrainConfig
from distill.core.atomic import atomic_torch_save, atomic_write_json
from distill.core.device import resolve_device
from distill.core.errors import CheckpointError, ConfigError, first_line
from distill.core.log import log
from distill.core.layout import STUDENT_FILE, TRAIN_STATE_FILE
from distill.core.progress import progress
from distill.checkpoint import head_entry, save_student
from distill.curves import plot_run
from distill.distributed import DistContext, any_rank, mean_across_ranks, min_across_ranks
from distill.monitor import KnnMonitor
from distill.resume import changed_options, last_logged_loss
from distill.run_parts import build_parts
from distill.schedule import Schedule, TimeBudget
from distill.stopping import StopSignals, TrainingInterrupted
from distill.step import TrainStep
from distill.trackers import MetricsLog

IN_MEMORY_AUTO_BYTES = 2 << 30


class Trainer:
    """The loop of a run: schedule, logging, evaluation, checkpoints, resume and signals (timm's train_one_epoch
    and its checkpoint saver, in one place). The run's parts come from :func:`distill.run_parts.build_parts` and
    each step from :class:`distill.step.TrainStep`; :meth:`fit` trains and returns the summary."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, dist: DistContext = DistContext(),
                 device: torch.device | None = None, overwrite: bool = False):
        cfg.validate()
        self.dist, self.rank, self.world_size = dist, dist.rank, dist.world_size
        self.out = Path(cfg.out or f"runs/{cfg.student.replace(':', '_')}-{cfg.method}")
        self.replaced: Path | None = None  # --overwrite: the old run, set aside until the new one has a checkpoint
        self._check_run_folder(resume, overwrite)
        try:
            self.parts = build_parts(cfg, dist, device or resolve_device(cfg.device))
        except BaseException:
            self._restore_replaced()
            raise
        self.step_fn = TrainStep(self.parts)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.elapsed = 0.0  # seconds inside the step
        self.wall = 0.0  # seconds of the training loop (evaluations and checkpoints included): --time-budget
        self.images_seen = 0
        if resume:
            self._load_state()

    # the parts the loop, train_run and the tests read most
    cfg = property(lambda self: self.parts.cfg, doc="the resolved config")
    folder = property(lambda self: self.parts.folder)
    device = property(lambda self: self.parts.device)
    model = property(lambda self: self.parts.model, doc="student + head")
    momentum = property(lambda self: self.parts.momentum)
    teacher = property(lambda self: self.parts.teacher)
    loss = property(lambda self: self.parts.loss)
    cache = property(lambda self: self.parts.cache, doc="the teacher cache, when the run reads one")
    generator = property(lambda self: self.step_fn.generator, doc="the augmentation (and cache-view) generator")

    def train_step(self, images: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        """One step (distill.step.TrainStep) numbered as the loop's current step."""
        return self.step_fn(images, indices, self.step)

    # -- run folder ---------------------------------------------------------------------------------------
    def _check_run_folder(self, resume: bool, overwrite: bool = False) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise CheckpointError(f"--out '{self.out}' is a file, not a run folder; choose another --out")
        state = self.out / TRAIN_STATE_FILE
        if resume and overwrite:
            raise CheckpointError("--resume continues the run in --out and --overwrite replaces it; use one of them")
        if resume and not state.is_file():
            raise CheckpointError(f"--resume: '{self.out}' holds no {TRAIN_STATE_FILE} to continue from; drop "
                                  "--resume to start")
        holds_run = state.is_file() or (self.out / STUDENT_FILE).is_file()
        if not resume and holds_run and not overwrite:
            raise CheckpointError(f"run folder '{self.out}' already holds a run; pass --resume to continue it, "
                                  "--overwrite to replace it, or --out NEW_FOLDER for a new one")
        aside = self.out.with_name(f".{self.out.name}.replaced")
        if overwrite and self.rank == 0 and aside.exists():  # left by a run killed before its first checkpoint
            shutil.rmtree(aside)
        if overwrite and holds_run and self.rank == 0:
            # set aside whole (one rename), deleted once the new run has written its first checkpoint; a run that
            # fails before that puts the old one back (_restore_replaced)
            self.replaced = aside
            self.out.rename(self.replaced)

    def _restore_replaced(self) -> None:
        """--overwrite, and the new run failed before its first checkpoint: the old run back at --out."""
        if self.replaced is None or not self.replaced.exists():
            return
        if self.out.exists():
            shutil.rmtree(self.out)
        self.replaced.rename(self.out)
        self.replaced = None
        log.warning(f"note: the new run stopped before its first checkpoint; the run it was to replace is back in "
                    f"'{self.out}'")

    def _teacher_fingerprint(self) -> str | None:
        return self.teacher.fingerprint() if self.teacher is not None else None

    def _state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(), "model": self.model.state_dict(), "loss": self.parts.loss.state_dict(),
            "momentum": self.momentum.state_dict() if self.momentum else None,
            "optimizer": self.parts.optimizer.state_dict(), "scaler": self.parts.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "elapsed": self.elapsed, "wall": self.wall, "images_seen": self.images_seen,
            "generator": self.step_fn.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "center": self.step_fn.center, "teacher_fingerprint": self._teacher_fingerprint(),
            "data_fingerprint": self.folder.fingerprint(),
            "world_size": self.world_size,
        }

    def _load_state(self) -> None:
        path = self.out / TRAIN_STATE_FILE
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read '{path}' ({str(exc).splitlines()[0]}); it may be from another "
                                  "version") from None
        changed = changed_options(state["config"], self.cfg.to_dict())
        if changed:
            raise CheckpointError(f"--resume: '{path}' was trained with other settings ({'; '.join(changed[:4])}); "
                                  "resume with the same ones, or train into a new --out")
        if state["teacher_fingerprint"] != self._teacher_fingerprint():
            raise CheckpointError(f"--resume: '{path}' was trained with another teacher; pass the same --teacher")
        if state["data_fingerprint"] != self.folder.fingerprint():
            raise CheckpointError(f"--resume: the images under '{self.cfg.data}' changed since '{path}' was written")
        try:
            self.step_fn.center = state["center"].to(self.device)
            self.model.load_state_dict(state["model"])
            self.parts.loss.load_state_dict(state["loss"])
            if self.momentum is not None:
                self.momentum.load_state_dict(state["momentum"])
            self.parts.optimizer.load_state_dict(state["optimizer"])
            self.parts.scaler.load_state_dict(state["scaler"])
        except (KeyError, RuntimeError, ValueError) as exc:  # torch's state-dict mismatch: a C++-sized message
            raise CheckpointError(f"--resume: '{path}' does not fit this run's model or loss "
                                  f"({type(exc).__name__}: {first_line(exc)[:160]}); resume with "
                                  "the settings it was trained with, or train into a new --out") from None
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.elapsed, self.images_seen = state["elapsed"], state["images_seen"]
        self.wall = state.get("wall", state["elapsed"])  # checkpoints before --time-budget: the step time
        self.step_fn.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())

    def _student_step(self) -> int | None:
        """The step of the run's student.pt (None when it is missing or unreadable): checkpoint.pt is the run's
        switch, and student.pt is rebuilt from it when it lags behind."""
        try:
            return int(torch.load(self.out / STUDENT_FILE, map_location="cpu", weights_only=True)["step"])
        except Exception:  # missing, truncated, or from another version
            return None

    def save(self) -> None:
        # never overwrite the last good checkpoint with weights a non-finite loss reached
        self.step_fn.check_loss(self.out)
        if self.rank != 0:
            return
        atomic_torch_save(self._state(), self.out / TRAIN_STATE_FILE)
        if self.replaced is not None:  # the new run has a checkpoint: the old one goes
            shutil.rmtree(self.replaced, ignore_errors=True)
            self.replaced = None
        head = head_entry(self.model.head, self.cfg.head, self.cfg.hidden_dim, self.cfg.embed_dim)
        save_student(self.out / STUDENT_FILE, self.model.student, self.parts.student_pre, self.cfg.to_dict(),
                     {"teacher": self.cfg.teacher, "method": self.cfg.method, "step": self.step, "head": head,
                      "teacher_licence": getattr(self.teacher, "licence", None)})

    # -- data -----------------------------------------------------------------------------------------------
    def batch_stream(self) -> BatchStream:
        """The run's stream of training batches (decoded into memory when it fits): what fit() iterates."""
        cfg = self.cfg
        use_memory = cfg.in_memory == "on" or (
            cfg.in_memory == "auto" and estimate_bytes(len(self.folder), self.parts.load_size) <= IN_MEMORY_AUTO_BYTES)
        memory = MemoryImages(self.folder, self.parts.load_size, workers=cfg.workers) if use_memory else None
        stream = BatchStream(self.folder, self.parts.load_size, self.parts.local_batch, memory=memory,
                             workers=cfg.workers,
                             pin_memory=self.device.type == "cuda", seed=cfg.seed, rank=self.rank,
                             world_size=self.world_size)
        if stream.batches_per_epoch() == 0:
            raise ConfigError(f"{len(self.folder)} readable images make no full batch of {self.parts.local_batch}; "
                              "lower --batch-size")
        return stream

    # -- loop -----------------------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to the schedule's end (or the time budget, or a signal) and return the run's summary."""
        try:
            return self._fit()
        except BaseException:  # --overwrite and no checkpoint yet: the old run goes back in place
            self._restore_replaced()
            raise

    def _fit(self) -> dict[str, Any]:
        cfg, main = self.cfg, self.rank == 0
        self.out.mkdir(parents=True, exist_ok=True)
        if main:
            atomic_write_json(self.out / "config.json", cfg.to_dict())
        stream = self.batch_stream()
        if cfg.teacher_center and self.step == 0:
            self.step_fn.center = self.step_fn.estimate_center(stream)
        per_epoch = stream.batches_per_epoch()
        schedule = Schedule(per_epoch, cfg.epochs, cfg.warmup_epochs, cfg.lr, cfg.max_steps)
        self.model.train()
        metrics = MetricsLog(self.out, cfg.log, cfg.to_dict()) if main else None
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
                        for group in self.parts.optimizer.param_groups:
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
                            self.step_fn.check_loss(self.out)
                            last_loss = mean_across_ranks(loss, self.device)
                            bar.total = schedule.total
                            now = time.perf_counter()
                            ips = window_n / max(now - window_t, 1e-9)
                            window_t, window_n = now, 0
                            bar.set_postfix(epoch=self.epoch, loss=f"{last_loss:.4f}", img_s=f"{ips:.0f}")
                            if metrics:
                                metrics.write({"step": self.step, "epoch": self.epoch, "loss": last_loss, "lr": lr,
                                               "images_per_s": ips, "images_seen": self.images_seen,
                                               "elapsed_s": round(self.elapsed, 3)})
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
            self.step_fn.check_loss(self.out)
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
        return KnnMonitor(cfg.data, cfg.val, self.parts.student_pre, bank_size=cfg.eval_bank,
                          num_queries=cfg.eval_queries,
                          k=cfg.knn_k, t=cfg.knn_t, workers=cfg.workers)

    def _evaluate(self, monitor: KnnMonitor, metrics) -> None:
        """One in-training kNN point (student backbone, eval mode) as a ``"kind": "knn"`` line of metrics.jsonl."""
        t0 = time.perf_counter()
        result = monitor(self.model.student, self.device)
        row = {"kind": "knn", "step": self.step, "epoch": self.epoch, "images_seen": self.images_seen,
               **{k: round(v, 5) for k, v in result.items()}, "eval_s": round(time.perf_counter() - t0, 2)}
        if metrics:
            metrics.write(row)

    def _stop_on_signal(self, signum: int | None, stream: BatchStream, per_epoch: int) -> None:
        """Save where the run stands (the sampler position included) and stop with 128 + signal."""
        if self.batch_in_epoch >= per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.save()
        signum = signum or signal.SIGTERM  # another rank received it
        name = signal.Signals(signum).name
        raise TrainingInterrupted(f"stopped by {name} at step {self.step}; checkpoint saved in '{self.out}'; "
                                  "continue with --resume", signum)
