"""The deployable student checkpoint (``student.pt``).

A student checkpoint holds everything needed to rebuild and use the student without its training run: the
architecture name and input size, the weights, the preprocessing, the embedding dimension and the resolved
training config, and the trained projection head (``head``: kind, widths, weights), which is not part of the
deployed backbone unless asked for (``export --embedding head``). It is written atomically (:mod:`distill.core.atomic`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distill.core.atomic import atomic_torch_save
from distill.core.errors import CheckpointError
from distill.core.layout import STUDENT_FILE
from distill.core.preprocess import Preprocess
from distill.students import Student, create_student

STUDENT_FORMAT = "edgedistill.student/1"
STUDENT_ENTRIES = ("student", "img_size", "state_dict", "preprocess")  # what load_student cannot do without


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


def head_entry(head: torch.nn.Module, kind: str, hidden_dim: int, out_dim: int) -> dict[str, Any] | None:
    """The trained projection head, stored in student.pt beside the backbone for ``export --embedding head``
    (None for ``--head none``: the loss saw the backbone feature itself)."""
    if kind == "none":
        return None
    return {"kind": kind, "hidden_dim": hidden_dim, "out_dim": out_dim,
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}}


def head_from_train_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The head entry of a run's ``checkpoint.pt`` (written beside ``student.pt`` at the same step), for runs
    whose student.pt predates the stored head; None when there is none."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
        cfg, model = state["config"], state["model"]
    except Exception:  # unreadable or foreign: no head from it
        return None
    head = {k[len("head."):]: v for k, v in model.items() if k.startswith("head.")}
    if cfg.get("head", "mlp") == "none" or not head:
        return None
    return {"kind": cfg.get("head", "mlp"), "hidden_dim": cfg["hidden_dim"], "out_dim": cfg["embed_dim"],
            "state_dict": head}


def with_head(student: Student, entry: dict[str, Any] | None, path: str | os.PathLike) -> Student:
    """``head(student(x))`` as a Student of the head's width: (B, 3, S, S) -> (B, out_dim), in eval mode."""
    from distill.heads import create_head

    if not entry:
        raise CheckpointError(f"'{path}' holds no projection head (trained with --head none, or before heads were "
                              "saved with the student); export --embedding backbone")
    head = create_head(entry["kind"], student.num_features, entry["hidden_dim"], entry["out_dim"])
    try:
        head.load_state_dict(entry["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the head in '{path}' does not load: {str(exc).splitlines()[0]}") from None
    return Student(torch.nn.Sequential(student, head).eval(), int(entry["out_dim"]), student.name, student.img_size)


def resolve_student_path(path: str | os.PathLike) -> Path:
    """A run folder means its ``student.pt``; a file is taken as is."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / STUDENT_FILE
        if not p.is_file():
            raise CheckpointError(f"run folder '{p.parent}' has no {STUDENT_FILE} yet; train it first or pass a "
                                  "checkpoint file")
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
    missing = [k for k in STUDENT_ENTRIES if k not in obj]
    if missing:
        raise CheckpointError(f"'{p}' lacks the entr{'ies' if len(missing) > 1 else 'y'} {', '.join(missing)} of a "
                              "student checkpoint (written by another tool or version?); re-train or re-save it")
    model = create_student(obj["student"], img_size=int(obj["img_size"]))
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in '{p}' do not fit {obj['student']}: {str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return LoadedStudent(model, Preprocess.from_dict(obj["preprocess"]), meta, p)
