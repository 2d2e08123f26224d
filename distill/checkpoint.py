"""The deployable student checkpoint (``student.pt``).

A student checkpoint holds everything needed to rebuild and use the student without its training run: the
architecture name and input size, the weights, the preprocessing, the embedding dimension and the resolved
training config. It is written atomically (:mod:`distill.core.atomic`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill.core.atomic import atomic_torch_save
from distill.core.errors import CheckpointError
from distill.core.preprocess import Preprocess
from distill.students import Student, create_student

STUDENT_FORMAT = "edgedistill.student/1"
STUDENT_FILE = "student.pt"
TRAIN_STATE_FILE = "checkpoint.pt"


def save_student(path: str | os.PathLike, student: Student, preprocess: Preprocess, config: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> None:
    """Write a deployable student checkpoint atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    atomic_torch_save({
        "format": STUDENT_FORMAT,
        "student": student.name,
        "img_size": student.img_size,
        "embedding_dim": student.num_features,
        "preprocess": preprocess.to_dict(),
        "state_dict": state,
        "config": config,
        **(extra or {}),
    }, path)


def resolve_student_path(path: str | os.PathLike) -> Path:
    """A run folder means its ``student.pt``; a file is taken as is."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / STUDENT_FILE
        if not p.is_file():
            raise CheckpointError(f"run folder '{p.parent}' has no {STUDENT_FILE} yet; train it first or pass a checkpoint file")
    elif not p.is_file():
        raise CheckpointError(f"'{p}' does not exist; pass a run folder or a student.pt checkpoint")
    return p


def is_student_checkpoint(path: str | os.PathLike) -> bool:
    p = Path(path)
    if p.is_dir():
        return (p / STUDENT_FILE).is_file()
    if not p.is_file() or p.suffix not in (".pt", ".pth"):
        return False
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(obj, dict) and obj.get("format") == STUDENT_FORMAT


@dataclass
class LoadedStudent:
    model: Student
    preprocess: Preprocess
    meta: dict[str, Any]
    path: Path


def load_student(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedStudent:
    """Rebuild a student from a run folder or ``student.pt``; raises :class:`CheckpointError` for anything else."""
    p = resolve_student_path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read '{p}' as a checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(obj, dict) or obj.get("format") != STUDENT_FORMAT:
        raise CheckpointError(f"'{p}' is not an edgedistill student checkpoint (no '{STUDENT_FORMAT}' marker); "
                              "pass the student.pt written by 'edgedistill train'")
    model = create_student(obj["student"], img_size=int(obj["img_size"]))
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in '{p}' do not fit {obj['student']}: {str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return LoadedStudent(model, Preprocess.from_dict(obj["preprocess"]), meta, p)
