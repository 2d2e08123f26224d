"""ncnn: a ``.param`` graph and its ``.bin`` weights (export.ncnn_export), run on the CPU. Deploy side: no torch.

ncnn has no batch axis, so a batch runs image by image. ``ncnn.Mat(array)`` does not own the array's memory: the
input is kept referenced (and C-contiguous) until its output has been extracted, and the output is copied out.
An fp32 artifact runs with fp16 storage and arithmetic off (ncnn turns them on by default where the CPU has them),
so fp32 means fp32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from distill.core.deps import require
from export.backends.base import Backend
from export.errors import ExportError
from export.metadata import read_metadata


class NcnnBackend(Backend):
    runtime = "ncnn"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None):
        ncnn = require("ncnn", "ncnn", "ncnn artifacts")
        weights = self.weights_beside(path, "an ncnn model")
        super().__init__(path, read_metadata(path))
        self.net = ncnn.Net()
        fp16 = self.precision == "fp16"
        self.net.opt.use_fp16_storage = self.net.opt.use_fp16_packed = self.net.opt.use_fp16_arithmetic = fp16
        self.net.opt.use_vulkan_compute = False
        if threads:
            self.net.opt.num_threads = threads
        if self.net.load_param(str(self.path)) != 0 or self.net.load_model(str(weights)) != 0:
            raise ExportError(f"ncnn cannot load '{self.path}' and '{weights.name}' (damaged, or from another "
                              "converter version); re-export it")
        self.ncnn = ncnn
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]

    def __call__(self, x) -> np.ndarray:
        batch = self.as_numpy(x)
        out = []
        for image in batch:
            image = np.ascontiguousarray(image)  # referenced until extract() returns: Mat does not own it
            ex = self.net.create_extractor()
            ex.input(self.input_name, self.ncnn.Mat(image))
            ret, mat = ex.extract(self.output_name)
            if ret != 0:
                raise ExportError(f"ncnn failed to run '{self.path.name}' (extract returned {ret})")
            out.append(np.array(mat, dtype=np.float32).reshape(-1).copy())
        return np.stack(out) if out else np.zeros((0, self.embedding_dim or 0), np.float32)

    def files(self) -> list[Path]:
        return [self.path, self.path.with_suffix(".bin")]
