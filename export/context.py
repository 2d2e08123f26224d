"""What a format's build function may use: the :class:`BuildContext`, made by the exporter before any build.

``build(ctx, precision, base_onnx, target, work)`` (export.formats) reads the export config, the preprocessing and
the batch layout, and for int8 the calibration images, the labelled accuracy data for NNCF's accuracy control and
:meth:`BuildContext.judge_int8`, the comparison the float fallback (export.fallback) searches with. Nothing else
of the exporter is reachable from a build.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from distill.core.preprocess import Preprocess
from distill.core.timing import measure
from export.batch import BatchSpec, run_batched
from export.errors import ExportError
from export.images import load_images
from export.parity import ParityResult, compare, loo_knn
from export.tolerances import FALLBACK_TARGET


def loo_knn_metric(labels: np.ndarray, k: int = 20, t: float = 0.07):
    """An NNCF validation function: leave-one-out weighted-kNN top-1 of a compiled model on labelled images."""

    def metric(compiled_model, dataset) -> float:
        items = (
            dataset.get_inference_data() if hasattr(dataset, "get_inference_data") else dataset
        )  # NNCF passes an iterable
        return loo_knn(np.concatenate([np.asarray(compiled_model(x)[0]) for x in items]), labels, k, t)

    return metric


@dataclass
class BuildContext:
    cfg: Any  # export.exporter.ExportConfig
    pre: Preprocess
    batch: BatchSpec
    embed_reference: Callable[[np.ndarray], np.ndarray]  # the PyTorch student's embeddings of (N, 3, S, S) images
    calib_dir: str | None  # --calib, else the run's training images
    parity_x: np.ndarray  # the normalised parity images (the gate's inputs)
    labels: np.ndarray | None  # their class labels, when the folder has classes
    student: Any = None  # the PyTorch student (distill.students.Student) for formats written from it (timm)
    _calib: np.ndarray | None = field(default=None, repr=False)
    _calib_reference: np.ndarray | None = field(default=None, repr=False)

    def calibration(self) -> np.ndarray:
        """(N, 3, S, S) calibration images for int8, loaded once; none is a one-line error naming --calib."""
        if self._calib is None:
            if not self.calib_dir or not Path(self.calib_dir).is_dir():
                raise ExportError("int8 needs real calibration images: pass --calib DIR (a few hundred images)")
            self._calib = load_images(self.calib_dir, self.pre, self.cfg.calib_size, self.cfg.workers)[0]
        return self._calib

    def accuracy_data(self) -> tuple[np.ndarray, Any] | None:
        """(labelled parity images, NNCF validation function) for accuracy-controlled int8, when asked and possible."""
        if self.cfg.max_knn_drop is None or self.labels is None:
            return None
        return self.parity_x, loo_knn_metric(self.labels)

    def judge_int8(self, runner) -> ParityResult:
        """An int8 candidate's embeddings of the calibration images against PyTorch's, at ``FALLBACK_TARGET``."""
        calib = self.calibration()
        if self._calib_reference is None:
            self._calib_reference = self.embed_reference(calib)
        return compare(self._calib_reference, run_batched(runner, calib, self.batch), "int8", tolerance=FALLBACK_TARGET)

    def time_p50(self, run, images: np.ndarray) -> float:
        """p50 ms of ``run`` on the first of ``images`` (repeated to a static batch): ``cfg.timing_s`` seconds
        after a third of that in warm-up."""
        x = images[:1]
        if self.batch.static and self.batch.static > 1:
            x = np.repeat(x, self.batch.static, axis=0)
        return measure(lambda: run(x), warmup_s=self.cfg.timing_s / 3, min_time_s=self.cfg.timing_s, min_runs=10).p50_ms
