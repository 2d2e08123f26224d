"""edgedistill.distill: label-free distillation of a large frozen teacher into a small student.

Public API (imported lazily, so that ``edgedistill --help`` starts fast)::

    from distill import create_student, create_loss, load_teacher, TrainConfig, Trainer
"""
from __future__ import annotations

import importlib

_API = {
    "create_student": "distill.students", "Student": "distill.students", "registered_students": "distill.students",
    "create_loss": "distill.losses", "LOSSES": "distill.losses", "DistillLoss": "distill.losses",
    "EmbeddingQueue": "distill.losses",
    "load_teacher": "distill.teachers", "Teacher": "distill.teachers", "TeacherOptions": "distill.teachers",
    "TrainConfig": "distill.config", "Trainer": "distill.trainer", "train_and_evaluate": "distill.train_run",
    "Preprocess": "distill.preprocess", "scan_folder": "distill.data", "ImageFolder": "distill.data",
    "load_student": "distill.checkpoint", "save_student": "distill.checkpoint",
    "load_embedder": "distill.embedders", "evaluate_knn": "distill.evaluate", "embed_folder": "distill.evaluate",
    "EdgeDistillError": "distill.errors", "DataError": "distill.errors", "ModelError": "distill.errors",
    "ConfigError": "distill.errors", "CheckpointError": "distill.errors",
    "MissingDependencyError": "distill.errors",
}

__all__ = sorted(_API)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'distill' has no attribute '{name}'")
