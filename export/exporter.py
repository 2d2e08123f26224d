"""Export a student to every requested format and precision, and gate each artifact on parity with PyTorch.

One failing format never stops the others: each artifact gets a status, ``ok``, ``parity_failed`` (built,
outputs differ beyond the tolerance: renamed ``*.failed`` unless allowed) or ``export_failed`` (with the
one-line reason).
"""
from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.core.atomic import atomic_write_json, atomic_write_text
from distill.core.errors import EdgeDistillError, first_line
from distill.hub import warn_licence
from export.backends import load_backend, runtime_for
from export.batch import BatchSpec, run_batched, run_smallest
from export.errors import ExportError
from export.context import BuildContext
from export.fallback import FallbackResult
from export.formats import FORMATS, PRECISIONS, get_format
from export.images import load_uint8, random_uint8
from export.metadata import now, versions, write_metadata
from export.model_card import write_model_card
from export.onnx_export import simplify, torch_to_onnx
from export.parity import compare
from export.reference import write_reference
from export.report import merged_report, pick_fastest
from export.sources import Source, load_source

@dataclass
class ExportConfig:
    model: str
    formats: tuple[str, ...] = ("onnx",)
    precisions: tuple[str, ...] | None = None  # default: fp32, or every precision with --format all
    calib: str | None = None  # default: the run's training images
    calib_size: int = 300
    parity_data: str | None = None  # default: --calib, else the run's val or training images
    parity_size: int = 200
    batch: int | None = None  # a static batch; default: a dynamic batch axis
    dynamic_batch: tuple[int, int, int] = (1, 8, 64)  # TensorRT profile (min, opt, max)
    img_size: int | None = None
    opset: int = 17
    workspace_gb: float = 4.0
    out: str | None = None
    allow_parity_failure: bool = False
    per_channel: bool = False  # onnxruntime int8: per-tensor by default (onnxruntime issue 11415)
    exclude_nodes: tuple[str, ...] = ()  # onnxruntime int8: nodes kept in float
    simplify: bool = True
    device: str = "cpu"  # where onnxruntime/OpenVINO artifacts run for the parity check
    max_knn_drop: float | None = None  # OpenVINO int8: accuracy-controlled quantisation (needs labels)
    onnx_only: bool = False  # formats with an ONNX form (TensorRT): write it, gate it, print how to build on target
    trt_version: int | None = None  # TensorRT major the artifact is for (default: the installed one, else 10)
    allow_tf32: bool = False  # TensorRT fp32 engines: TF32 is cleared unless allowed
    timing_s: float = 1.0  # per artifact: a short latency measurement at batch 1 after the gate (0: none)
    pick: bool = False  # --format auto: name the fastest artifact that passed the gate as the deployable one
    int8_fallback: float = 0.75  # int8 missing the gate: keep up to this fraction of activation quantizers in float
    calibration: str = "auto"  # int8 activation ranges: minmax | percentile | entropy | auto (export.calibration)
    embedding: str = "backbone"  # backbone (as the papers deploy) | head (the trained projection: teacher space)
    workers: int = 2

    def batch_spec(self) -> BatchSpec:
        if self.batch:
            return BatchSpec(static=self.batch)
        lo, opt, hi = self.dynamic_batch
        return BatchSpec(min=lo, opt=opt, max=hi)


@dataclass
class ArtifactResult:
    format: str
    precision: str
    path: str | None
    status: str  # ok | parity_failed | export_failed
    parity: dict | None = None
    error: str | None = None
    available: bool = True  # False: this machine cannot build the format at all
    seconds: float = 0.0
    size_bytes: int = 0
    files: list[str] = field(default_factory=list)
    float_quantizers: tuple[int, int] | None = None  # int8: (kept in float, of all activation quantizers)
    trtexec: str | None = None  # TensorRT: the command that builds this engine with trtexec (on the target)
    sha256: str | None = None  # over the files the runtime loads (Backend.fingerprint): the reference bundle's key
    latency_ms: float | None = None  # p50 at batch 1, measured right after the gate (short: see ExportConfig.timing_s)
    vs_fp32: float | None = None  # latency of the same format's fp32 artifact / this one's (> 1: faster)

    def public(self) -> dict[str, Any]:
        return {"format": self.format, "precision": self.precision, "path": self.path, "status": self.status,
                "parity": self.parity, "error": self.error, "available": self.available,
                "size_bytes": self.size_bytes, "seconds": round(self.seconds, 2),
                "float_quantizers": list(self.float_quantizers) if self.float_quantizers else None,
                "trtexec": self.trtexec, "sha256": self.sha256,
                "latency_ms": round(self.latency_ms, 4) if self.latency_ms is not None else None,
                "vs_fp32": round(self.vs_fp32, 3) if self.vs_fp32 is not None else None}


class Exporter:
    def __init__(self, cfg: ExportConfig):
        self.cfg = cfg
        for name in cfg.formats:
            get_format(name)
        for p in cfg.precisions or ():
            if p not in PRECISIONS:
                raise ExportError(f"unknown precision '{p}'; valid precisions: {', '.join(PRECISIONS)}")
        self.source: Source = load_source(cfg.model, cfg.img_size, cfg.embedding)
        self.pre = self.source.preprocess
        self.batch = cfg.batch_spec()
        self.out = Path(cfg.out) if cfg.out else self.source.default_out()
        self.stem = self.source.name.replace(":", "_").replace("/", "_") + ("-head" if cfg.embedding == "head" else "")
        run_cfg = self.source.meta.get("config") or {}
        self.calib_dir = cfg.calib or run_cfg.get("data")
        self.parity_dir = cfg.parity_data or cfg.calib or run_cfg.get("val") or run_cfg.get("data")
        self.licence = self.source.meta.get("teacher_licence")  # the teacher's weights' licence: the student's too
        warn_licence(str(self.source.meta.get("teacher") or self.source.name), self.licence)

    # -- inputs -----------------------------------------------------------------------------------------------
    def _parity_inputs(self) -> tuple[np.ndarray, str, np.ndarray | None]:
        """(uint8 parity images, "real" or "random", labels or None): normalised for the gate, kept as they are
        in the reference bundle (export.reference)."""
        if self.parity_dir and Path(self.parity_dir).is_dir():
            u8, labels = load_uint8(self.parity_dir, self.pre, self.cfg.parity_size, self.cfg.workers)
            return u8, "real", labels
        return random_uint8(self.pre, min(self.cfg.parity_size, 64)), "random", None

    # -- one artifact -----------------------------------------------------------------------------------------
    def _build(self, fmt: str, precision: str, base_onnx: Path, work: Path) -> tuple[Path, dict]:
        """Dispatch to the format's build function (export.formats): it returns (artifact path, options)."""
        format_ = FORMATS[fmt]
        target = self.out / f"{self.stem}-{fmt}-{precision}{format_.suffix}"
        return format_.builder()(self.ctx, precision, base_onnx, target, work)

    def _embed_torch(self, x: np.ndarray) -> np.ndarray:
        """The PyTorch student's embeddings of (N, 3, S, S) images: what every artifact is compared with."""
        with torch.no_grad():
            return run_batched(lambda a: self.source.model(torch.from_numpy(a)).numpy(), x, self.batch)

    def _check(self, fmt: str, precision: str, path: Path):
        device = "cuda" if runtime_for(path) == "tensorrt" else self.cfg.device
        backend = load_backend(path, device=device)
        candidate = run_batched(backend, self._parity_x, self.batch)
        smallest = run_smallest(backend, self._parity_x, self.batch)
        return compare(self._reference, candidate, precision, self._parity_kind, labels=self._labels,
                       smallest=smallest), backend

    def _export_one(self, fmt: str, precision: str, base_onnx: Path, work: Path) -> ArtifactResult:
        format_ = FORMATS[fmt]
        missing = None if (self.cfg.onnx_only and format_.onnx_form) else format_.missing()
        if missing:
            return ArtifactResult(fmt, precision, None, "export_failed", error=missing, available=False)
        t0 = time.perf_counter()
        try:
            path, options = self._build(fmt, precision, base_onnx, work)
            meta = self._metadata(fmt, precision, options)
            write_metadata(path, meta)  # the backend reads the preprocessing from it
            parity, backend = self._check(fmt, precision, path)
        except EdgeDistillError as exc:
            return ArtifactResult(fmt, precision, None, "export_failed", error=first_line(exc),
                                  seconds=time.perf_counter() - t0)
        except Exception as exc:  # a converter's own failure: reported for this artifact, the others go on
            return ArtifactResult(fmt, precision, None, "export_failed", error=f"{type(exc).__name__}: "
                                                                               f"{first_line(exc)}",
                                  seconds=time.perf_counter() - t0)
        status = "ok" if parity.passed else "parity_failed"
        latency = self._latency(backend) if status == "ok" else None
        meta_file = write_metadata(path, {**meta, "status": status, "parity": parity.to_dict(),
                                          "latency_ms_b1": latency})
        files = sorted({*map(str, backend.files()), str(meta_file)})
        fb = options.get("fallback")
        if fb and fb.get("ranking"):  # the fallback's sensitivity ranking, for the user to inspect
            csv = path.with_name(path.name.split(".")[0] + ".sensitivity.csv")
            atomic_write_text(csv, FallbackResult(**fb).sensitivity_csv())
            files.append(str(csv))
        size, digest = backend.size_bytes(), backend.fingerprint()
        del backend  # release the runtime's hold on the files before any rename
        if status == "parity_failed" and not self.cfg.allow_parity_failure:
            files = [self._mark_failed(Path(f)) for f in files]
            path = Path(f"{path}.failed")
        return ArtifactResult(fmt, precision, str(path), status, parity.to_dict(), parity.reason,
                              seconds=time.perf_counter() - t0, size_bytes=size, files=files,
                              float_quantizers=(len(fb["float_quantizers"]), fb["total_quantizers"]) if fb else None,
                              trtexec=options.get("trtexec"), latency_ms=latency, sha256=digest)

    def _latency(self, backend) -> float | None:
        """p50 ms of one image through ``backend`` (a short, stated measurement: ``cfg.timing_s`` seconds after
        a third of that in warm-up). ``edgedistill bench`` measures properly; this is for the table and --format
        auto, which compare artifacts of the same run on the same machine."""
        if self.cfg.timing_s <= 0:
            return None
        return self.ctx.time_p50(backend, self._parity_x)

    def _metadata(self, fmt: str, precision: str, options: dict) -> dict[str, Any]:
        return {
            "format": fmt, "precision": precision, "status": "unchecked", "preprocess": self.pre.to_dict(),
            "embedding_dim": int(self._reference.shape[1]), "embedding": self.cfg.embedding,
            "batch": self.batch.to_dict(),
            "input_name": "input", "output_name": "embedding",
            "source": {"student": self.source.name, "checkpoint": str(self.source.path) if self.source.path else None,
                       "sha256": self.source.sha256, "img_size": self.pre.input_size,
                       "teacher": self.source.meta.get("teacher"), "teacher_licence": self.licence},
            "options": options, "parity": None, "versions": versions(), "created": now(),
        }

    @staticmethod
    def _mark_failed(path: Path) -> str:
        failed = Path(f"{path}.failed")
        path.replace(failed)
        return str(failed)

    # -- all --------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create the output folder '{self.out}' ({exc.strerror or exc}); "
                              "pass --out a folder you can write") from None
        self._parity_u8, self._parity_kind, self._labels = self._parity_inputs()
        self._parity_x = self.pre.numpy_from_uint8(self._parity_u8)
        self._reference = self._embed_torch(self._parity_x)
        self.ctx = BuildContext(cfg=cfg, pre=self.pre, batch=self.batch, embed_reference=self._embed_torch,
                                calib_dir=self.calib_dir, parity_x=self._parity_x, labels=self._labels,
                                student=self.source.model)
        precisions = cfg.precisions or (PRECISIONS if len(cfg.formats) > 1 else ("fp32",))
        results: list[ArtifactResult] = []
        with tempfile.TemporaryDirectory(prefix="edgedistill-export-") as tmp:
            work = Path(tmp)
            base = work / "base.onnx"
            try:
                torch_to_onnx(self.source.model, self.pre.input_size, base, self.batch, cfg.opset)
                simplified = cfg.simplify and simplify(base, self.pre.input_size, self.batch)
            except EdgeDistillError as exc:
                raise ExportError(f"the base ONNX export failed, so no format can be built: {exc}") from None
            for fmt in cfg.formats:
                for precision in precisions:
                    if precision in FORMATS[fmt].precisions:
                        results.append(self._export_one(fmt, precision, base, work))
        fp32 = {r.format: r.latency_ms for r in results if r.precision == "fp32" and r.latency_ms}
        for r in results:
            if r.latency_ms and fp32.get(r.format):
                r.vs_fp32 = fp32[r.format] / r.latency_ms
        report = {
            "artifacts": [r.public() for r in results],
            "out": str(self.out), "source": {"model": cfg.model, "student": self.source.name,
                                             "sha256": self.source.sha256, "teacher_licence": self.licence},
            "parity_images": {"kind": self._parity_kind, "count": int(len(self._parity_x)),
                              "folder": self.parity_dir if self._parity_kind == "real" else None},
            "simplified": bool(simplified), "config": asdict(cfg), "versions": versions(), "created": now(),
        }
        if cfg.pick:
            report["picked"] = pick_fastest([r.public() for r in results])
        gated = {Path(r.path).name: {"sha256": r.sha256, "format": r.format, "precision": r.precision,
                                     "status": r.status, "tolerance": r.parity["tolerance"]}
                 for r in results if r.sha256 and not r.path.endswith(".failed")}
        if gated:  # the on-target gate's bundle (export.reference), before export.json names what it holds
            write_reference(self.out, self._parity_u8, self._reference, self._labels, kind=self._parity_kind,
                            preprocess=self.pre, source=report["source"], artifacts=gated)
        merged = merged_report(self.out / "export.json", report)
        atomic_write_json(self.out / "export.json", merged)
        write_model_card(self.out, merged, self.source.meta,  # beside the artifacts: what they are and how they hold up
                         self.source.path.parent if self.source.path else None)
        return report


def export_model(cfg: ExportConfig) -> dict[str, Any]:
    """Export and gate; returns the report (also written to ``<out>/export.json``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return Exporter(cfg).run()
