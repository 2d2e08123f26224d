"""One interface for everything that embeds images: students, teachers (and, in ``export``, runtimes).

An embedder has ``name``, ``preprocess``, ``embedding_dim``, ``fingerprint()`` and ``embedder(x)`` mapping a
normalised (B, 3, S, S) float tensor to (B, D) float32. ``edgedistill eval`` measures teachers and students
through it, so both are measured by the same code.
"""
from __future__ import annotations

import torch

from distill.checkpoint import LoadedStudent, is_student_checkpoint, load_student
from distill.core.atomic import sha256_file
from distill.teachers import Teacher, TeacherOptions, load_teacher


class StudentEmbedder:
    """A trained student (backbone only, no projection head) as an embedder."""

    kind = "student"

    def __init__(self, loaded: LoadedStudent, device: str | torch.device = "cpu"):
        self.loaded = loaded
        self.model = loaded.model.to(device).eval()
        self.device = torch.device(device)
        self.preprocess = loaded.preprocess
        self.embedding_dim = loaded.model.num_features
        self.name = f"{loaded.meta['student']} ({loaded.path})"

    @torch.no_grad()
    def __call__(self, x) -> torch.Tensor:
        """A normalised (B, 3, S, S) float tensor or numpy array -> (B, D) float32 tensor."""
        return self.model(torch.as_tensor(x).to(self.device)).float()

    def fingerprint(self) -> str:
        return sha256_file(self.loaded.path)


def load_embedder(spec: str, teacher_options: TeacherOptions = TeacherOptions(),
                  device: str | torch.device = "cpu") -> StudentEmbedder | Teacher:
    """A student run folder / ``student.pt``, or any teacher spec (see :func:`distill.teachers.load_teacher`)."""
    if is_student_checkpoint(spec):
        return StudentEmbedder(load_student(spec), device)
    return load_teacher(spec, teacher_options, device)
