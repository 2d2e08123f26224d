"""One training step, the second of the trainer's units (distill.run_parts builds, distill.trainer loops).

Augment a uint8 batch on the device (the same view for teacher and student, each resized to its own input size
and normalised with its own statistics), embed it with the teacher (no gradients) or read the teacher's cache,
embed it with the student (+ head) and, where the loss asks for it, with the momentum student; take an SGD step;
update the momentum student. The step never waits for the device: its loss stays a device tensor, and the first
non-finite loss is recorded on the device and read by :meth:`TrainStep.check_loss` at logging steps and saves.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from distill.augment import resize_views
from distill.batches import BatchStream
from distill.core.errors import TrainingError
from distill.run_parts import RunParts
from distill.teachers import TorchTeacher


class TrainStep:
    """``step(images, indices, step)`` -> the loss (0-d device tensor); holds the step's own state: the augmentation
    generator, the teacher's centre and the first non-finite loss."""

    def __init__(self, parts: RunParts):
        self.parts = parts
        cfg, device = parts.cfg, parts.device
        self.center = torch.zeros(max(parts.teacher_dim, 1), device=device)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + parts.dist.rank)
        # the first non-finite loss (step, value), recorded on the device so that no step waits for the GPU
        self.bad_loss = torch.tensor([-1.0, 0.0], device=device)
        self.graph_steps = cfg.compile and cfg.compile_mode == "reduce-overhead" and device.type == "cuda"

    def autocast(self):
        dtype = self.parts.amp_dtype
        return torch.autocast("cuda", dtype=dtype) if dtype else nullcontext()

    def __call__(self, images: torch.Tensor, indices: torch.Tensor | None = None, step: int = 0) -> torch.Tensor:
        """One optimisation step on a (B, 3, S, S) uint8 batch; ``indices`` (B,) are folder positions (needed
        with a teacher cache); ``step`` numbers it for the non-finite-loss record. Returns the loss as a 0-d
        tensor on the device: reading it (``float``) waits for the step, so the loop reads it only at logging
        steps, and the GPU runs behind the Python code."""
        p = self.parts
        cfg, t_pre, s_pre, loss_fn = p.cfg, p.teacher_pre, p.student_pre, p.loss
        if self.graph_steps:  # a new iteration for CUDA graph trees (the previous step's outputs may be reused)
            torch.compiler.cudagraph_mark_step_begin()
        images = images.to(p.device, non_blocking=True)
        b = images.shape[0]
        views = [p.augment(images, self.generator) for _ in range(loss_fn.views)]
        s_views = [s_pre.normalize(resize_views(v, s_pre.input_size)) for v in views]
        if cfg.channels_last:
            s_views = [v.contiguous(memory_format=torch.channels_last) for v in s_views]
        student_views = loss_fn.student_views or range(loss_fn.views)
        s_in = torch.cat([s_views[v] for v in student_views])
        if not loss_fn.needs_teacher:
            teacher_emb = None
        elif p.cache is not None:
            teacher_emb = p.cache.lookup(indices, loss_fn.views, self.generator, p.device) - self.center
        else:
            t_in = torch.cat([t_pre.normalize(resize_views(v, t_pre.input_size)) for v in views])
            if cfg.channels_last and isinstance(p.teacher, TorchTeacher):  # 1.3x a ResNet-56 forward on the CPU
                t_in = t_in.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), self.autocast():
                teacher_emb = (p.teacher(t_in).float() - self.center).view(loss_fn.views, b, -1)
        with self.autocast():
            student_emb = p.forward(s_in).float().view(len(student_views), b, -1)
            momentum_emb = None
            if p.momentum is not None:
                momentum_emb = torch.stack([p.momentum(s_views[v], self.generator).float()
                                            for v in loss_fn.momentum_views])
        loss = loss_fn(student_emb, teacher_emb, momentum_emb)
        self.update(loss)
        if p.momentum is not None:
            p.momentum.update(p.model)  # same gradients on every rank -> the same EMA everywhere
        loss = loss.detach().float()
        first = (self.bad_loss[0] < 0) & ~torch.isfinite(loss)
        # new_full is a fill kernel: no host-to-device copy, which from pageable memory would wait for the GPU
        self.bad_loss = torch.where(first, torch.stack([loss.new_full((), float(step)), loss]), self.bad_loss)
        return loss

    def update(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (through the grad scaler; DDP all-reduces the gradients in backward)."""
        p = self.parts
        p.optimizer.zero_grad(set_to_none=True)
        p.scaler.scale(loss).backward()
        p.scaler.step(p.optimizer)
        p.scaler.update()

    def check_loss(self, out) -> None:
        """Raise if a step since the start had a non-finite loss (one read of a device tensor)."""
        step, value = self.bad_loss.tolist()
        if step >= 0:
            raise TrainingError(f"non-finite loss ({value}) at step {int(step)}; the last good checkpoint in "
                                f"'{out}' is intact; lower --lr or check the teacher's outputs")

    @torch.no_grad()
    def estimate_center(self, stream: BatchStream, num_images: int = 2048) -> torch.Tensor:
        """The teacher's mean embedding over the first images of the data (the same on every rank)."""
        p = self.parts
        if p.cache is not None:
            return p.cache.mean(np.arange(min(num_images, len(p.folder)))).to(p.device)
        t_pre, total, count = p.teacher.preprocess, None, 0
        order = BatchStream(p.folder, p.load_size, 256, memory=stream.memory, workers=p.cfg.workers,
                            drop_last=False, shuffle=False)
        for batch in order.epoch(0):
            x = t_pre.normalize(resize_views(batch.images.to(p.device).float().div_(255), t_pre.input_size))
            emb = p.teacher(x).float()
            total = emb.sum(0) if total is None else total + emb.sum(0)
            count += emb.shape[0]
            if count >= num_images:
                break
        return total / count
