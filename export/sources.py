"""What ``--model`` names: a run folder, a student.pt, or ``student:NAME`` (an untrained student, seeded,
for checking the toolchain on architectures before training them)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from distill.checkpoint import head_from_train_state, load_student, with_head
from distill.core.layout import TRAIN_STATE_FILE
from distill.core.atomic import sha256_file
from distill.core.preprocess import Preprocess
from distill.students import Student, create_student, untrained_student
from export.errors import ExportError


@dataclass
class Source:
    model: Student
    preprocess: Preprocess
    name: str  # the student architecture
    sha256: str  # of the checkpoint (or of the spec for student:NAME)
    path: Path | None  # the checkpoint, if any
    meta: dict[str, Any]

    def default_out(self) -> Path:
        if self.path is not None:
            return self.path.parent / "export"
        return Path("runs") / "export" / self.name.replace(":", "_")  # never the export package of a checkout


EMBEDDINGS = ("backbone", "head")


def load_source(spec: str, img_size: int | None = None, embedding: str = "backbone") -> Source:
    """Load the student to export; ``img_size`` rebuilds it for another input size (weights unchanged);
    ``embedding="head"`` appends the trained projection head (the teacher-space embedding, e.g. 64-d instead of
    the backbone's 1280-d), which the papers do not deploy but which costs far less memory and search time."""
    if embedding not in EMBEDDINGS:
        raise ExportError(f"unknown --embedding '{embedding}'; valid: {', '.join(EMBEDDINGS)}")
    if spec.startswith("student:"):
        name = spec.split(":", 1)[1]
        size = img_size or 224
        warnings.warn(
            f"exporting an UNTRAINED {name} (random weights, seed 0): for toolchain checks only", stacklevel=2
        )
        if embedding == "head":
            raise ExportError(f"'{spec}' is an untrained architecture with no head; export --embedding backbone")
        model, pre = untrained_student(name, size)
        import hashlib

        return Source(model, pre, name, hashlib.sha256(spec.encode()).hexdigest(), None, {"untrained": True})
    loaded = load_student(spec)
    model, pre = loaded.model, loaded.preprocess
    if img_size and img_size != pre.input_size:
        rebuilt = create_student(loaded.meta["student"], img_size=img_size)
        rebuilt.load_state_dict(model.state_dict())
        model, pre = rebuilt.eval(), pre.override(input_size=img_size)
    if embedding == "head":
        entry = loaded.meta.get("head") or head_from_train_state(loaded.path.parent / TRAIN_STATE_FILE)
        model = with_head(model, entry, loaded.path)
    meta = {**{k: v for k, v in loaded.meta.items() if k != "head"}, "embedding": embedding}
    return Source(model, pre, loaded.meta["student"], sha256_file(loaded.path), loaded.path, meta)
