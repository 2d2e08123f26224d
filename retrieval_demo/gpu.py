"""faiss on a CUDA GPU: an index read from disk, cloned to the device for search (``--device cuda[:N]``).

faiss's GPU indexes cover exact (flat) search and the IVF families (IVF-flat, IVF-PQ, behind an OPQ rotation
too); HNSW has no GPU version, so an HNSW index is refused with the fix. The clone follows faiss's own
``index_cpu_to_gpu`` with ``GpuClonerOptions``: IVF-PQ codes of 56 bytes and more need float16 lookup tables on
the GPU (``useFloat16``), everything else keeps float32. Search parameters on the clone go through
``GpuParameterSpace`` (``nprobe``), which reaches an IVF index behind a pre-transform as well. The build of an
index stays on the CPU (it is written to disk either way); the GPU is for searching it, as in ``retrieve eval``
and ``retrieve search``.

Needs a faiss build with GPU support: the ``gpu`` extra (``faiss-gpu-cu12``, which replaces ``faiss-cpu``).
"""
from __future__ import annotations

from typing import Any

from distill.core.deps import require
from distill.core.errors import ConfigError
from retrieval_demo.kinds import INDEX_KINDS, IndexKind



def parse_device(device: str) -> int | None:
    """``cpu`` -> None, ``cuda`` -> 0, ``cuda:N`` -> N; anything else is refused with the valid forms."""
    if device == "cpu":
        return None
    if device == "cuda":
        return 0
    head, _, number = device.partition(":")
    if head == "cuda" and number.isdigit():
        return int(number)
    raise ConfigError(f"unknown --device '{device}'; valid: cpu, cuda, cuda:N")


class GpuIndex:
    """A CPU faiss index cloned to GPU ``gpu_id``; keeps the GPU resources alive as long as the clone."""

    def __init__(self, index: Any, kind: IndexKind, gpu_id: int) -> None:
        if not kind.gpu:
            gpu_kinds = ", ".join(k.name for k in INDEX_KINDS.values() if k.gpu)
            raise ConfigError(f"faiss has no GPU version of a {kind.name} index; search it with --device cpu, or "
                              f"rebuild it as one of {gpu_kinds} (retrieve index --index ...)")
        faiss = require("faiss", "gpu", "GPU search")
        if not hasattr(faiss, "StandardGpuResources"):
            raise ConfigError("this faiss build has no GPU support; install the gpu extra on a CUDA machine "
                              "(pip install 'edgedistill[gpu]', which replaces faiss-cpu), or use --device cpu")
        available = faiss.get_num_gpus()
        if available == 0:
            raise ConfigError("faiss has GPU support but sees no GPU (no CUDA driver, or CUDA_VISIBLE_DEVICES hides "
                              "them); run on a machine with an NVIDIA GPU, or use --device cpu")
        if gpu_id >= available:
            raise ConfigError(f"--device cuda:{gpu_id}: faiss sees {available} GPU(s); pick one below {available} "
                              "or use --device cpu")
        options = faiss.GpuClonerOptions()
        options.useFloat16 = kind.gpu_float16  # PQ codes >= 56 bytes need float16 tables on the GPU
        self.faiss, self.kind = faiss, kind
        self.resources = faiss.StandardGpuResources()
        self.index = faiss.index_cpu_to_gpu(self.resources, gpu_id, index, options)

    def set_effort(self, params) -> None:
        """The kind's search effort on the clone (nprobe for IVF; exact search has none)."""
        if self.kind.knob is not None:
            self.faiss.GpuParameterSpace().set_index_parameter(self.index, self.kind.knob,
                                                               getattr(params, self.kind.knob))

    def search(self, queries, k: int):
        return self.index.search(queries, k)
