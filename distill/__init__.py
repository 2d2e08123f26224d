"""edgedistill.distill: label-free distillation of a large frozen teacher into a small student.

Public API (imported lazily, so that ``edgedistill --help`` starts fast)::

    from distill import create_student, create_loss, load_teacher, TrainConfig, Trainer
"""
from distill.core.lazy import lazy_exports

__version__ = "0.1.0"
__getattr__, __all__ = lazy_exports(__name__, {
    "distill.students": ("create_student", "Student", "registered_students"),
    "distill.losses": ("create_loss", "LOSSES", "DistillLoss", "EmbeddingQueue"),
    "distill.teachers": ("load_teacher", "Teacher", "TeacherOptions"),
    "distill.config": ("TrainConfig", "resolve_config"),
    "distill.trainer": ("Trainer",),
    "distill.train_run": ("train_and_evaluate",),
    "distill.checkpoint": ("load_student", "save_student"),
    "distill.embedders": ("load_embedder",),
    "distill.evaluate": ("evaluate_knn",),
    "distill.core.preprocess": ("Preprocess",),
    "distill.core.images": ("scan_folder", "ImageFolder"),
    "distill.core.embeddings": ("embed_folder",),
    "distill.core.errors": ("EdgeDistillError", "DataError", "ModelError", "ConfigError", "CheckpointError",
                            "MissingDependencyError"),
})
