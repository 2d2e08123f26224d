"""ONNX: the base export every other format is built from, plus fp16 and int8 variants.

* fp32: ``torch.onnx.export`` (TorchScript-based exporter: 0.4-2.4 s per student and honours the opset asked
  for, where the dynamo exporter takes 5-10 s and silently moves timm nets to opset 18), dynamic batch axis by
  default, ``onnx.checker`` full check, then onnxslim where the simplified graph keeps the outputs.
* fp16: weights and activations in float16 with float32 input and output (callers need not change).
* int8: static QDQ quantisation with onnxruntime on calibration images; per-tensor weights by default
  (per-channel collapses MobileNetV3's accuracy: onnxruntime issue 11415); nodes can be excluded. The activation
  ranges come from one of onnxruntime's calibrators (``CALIBRATORS``); ``--calibration auto`` tries them in
  turn and keeps the first that meets the fallback target on the calibration images, else the closest, before
  the float fallback (export.fallback) leaves anything in float.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from distill.core.embeddings import cosine_rows
from export.batch import BatchSpec
from export.errors import ExportError
from export.onnx_io import check_onnx, cpu_session, save_onnx
from export.qdq import QDQGraph, onnx_fallback

INPUT_NAME, OUTPUT_NAME = "input", "embedding"
# onnxruntime's static calibrators, in the order --calibration auto tries them: the plain range first (the
# cheapest, and exact for well-behaved tensors), then the two that clip outliers (a 99.999th-percentile range;
# the range minimising the KL divergence of the histogram, TensorRT's classic entropy calibration)
CALIBRATORS = ("minmax", "percentile", "entropy")


def torch_to_onnx(model: torch.nn.Module, img_size: int, path: Path, batch: BatchSpec, opset: int = 17) -> Path:
    """Export ``model`` ((B, 3, S, S) -> (B, D)) to ONNX with input ``input`` and output ``embedding``."""
    if opset < 17:
        raise ExportError(f"--opset {opset} is too old: use 17 or newer")
    model = model.eval().cpu()
    example = torch.randn(batch.static or 2, 3, img_size, img_size)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if batch.dynamic else None
    tmp = path.with_name(f".{path.name}.export")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, tracer warnings
            torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        tmp.replace(path)
    except ExportError:
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"torch.onnx.export failed: {str(exc).splitlines()[0]}") from None
    check_onnx(path)
    return path


def simplify(path: Path, img_size: int, batch: BatchSpec) -> bool:
    """Replace the ONNX file with onnxslim's simplification when that keeps the outputs (cosine >= 1 - 1e-6).

    Returns whether the simplified graph was kept. onnxslim is optional: without it the graph stays as is.
    """
    try:
        import onnxslim
    except ImportError:
        return False
    import onnx

    original = onnx.load(str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(onnx.load(str(path)))
    except Exception:
        return False
    x = np.random.default_rng(0).standard_normal((batch.static or 2, 3, img_size, img_size)).astype(np.float32)
    a = cpu_session(original.SerializeToString()).run(None, {INPUT_NAME: x})[0]
    b = cpu_session(slim.SerializeToString()).run(None, {INPUT_NAME: x})[0]
    if a.shape != b.shape or cosine_rows(a, b).min() < 1 - 1e-6:
        return False
    save_onnx(slim, path)
    check_onnx(path)
    return True


def to_fp16(src: Path, dst: Path) -> Path:
    """float16 weights and activations, float32 input/output (``keep_io_types``)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    except Exception as exc:
        raise ExportError(f"fp16 conversion failed: {str(exc).splitlines()[0]}") from None
    topological_sort(model.graph)
    save_onnx(model, dst)
    check_onnx(dst)
    return dst


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` so that every node comes after the producers of its inputs (Kahn's algorithm).

    The fp16 converter appends the cast nodes for ``keep_io_types`` at the end of the list, which
    ``onnx.checker`` rejects.
    """
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("the ONNX graph has a cycle or an undefined input; cannot order its nodes")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


class ArrayReader:
    """onnxruntime's CalibrationDataReader protocol over an (N, 3, S, S) float32 array, in batches."""

    def __init__(self, images: np.ndarray, batch_size: int, pad: bool = False):
        """``pad``: repeat the last image to fill the last batch (a graph with a static batch takes no other)."""
        self.batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
        if pad and self.batches and len(self.batches[-1]) < batch_size:
            last = self.batches[-1]
            self.batches[-1] = np.concatenate([last, np.repeat(last[-1:], batch_size - len(last), axis=0)])
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {INPUT_NAME: self.batches[self.i - 1]}

    def rewind(self):
        self.i = 0


def _even_batch(n: int, method: str, most: int = 16) -> int:
    """Calibration batch size: ``most`` for MinMax; for the histogram calibrators the largest divisor of ``n`` up
    to ``most``, since onnxruntime stacks their per-batch outputs into one array and fails on a short last batch
    ("inhomogeneous shape", onnxruntime 1.32)."""
    if method == "minmax":
        return most
    return max(d for d in range(1, most + 1) if n % d == 0)


def to_int8(src: Path, dst: Path, calib: np.ndarray, *, per_channel: bool = False,
            exclude_nodes: tuple[str, ...] = (), symmetric_activations: bool = False,
            batch: BatchSpec = BatchSpec(), method: str = "minmax") -> Path:
    """Static QDQ quantisation on calibration images, activation ranges from the calibrator ``method``
    (one of ``CALIBRATORS``).

    Default U8S8 (uint8 activations, int8 weights): the fast mode of onnxruntime on x86 CPUs without VNNI.
    ``symmetric_activations`` gives the explicit-quantisation form TensorRT needs: S8S8 with zero points at 0,
    and biases left in float (``QuantizeBias: False``), since TensorRT's dequantize layer reads INT8 (or FP8,
    INT4, FP4) inputs only and rejects onnxruntime's default INT32 biases (onnx-tensorrt#850, onnxruntime#14229).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prep = dst.with_name(f".{dst.stem}.prep.onnx")
    reader = (ArrayReader(calib, batch.static, pad=True) if batch.static
              else ArrayReader(calib, _even_batch(len(calib), method)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
            quantize_static(
                str(prep), str(dst), reader, quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=list(exclude_nodes),
                calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                  "entropy": CalibrationMethod.Entropy}[method],
                extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True,
                               "QDQKeepRemovableActivations": True, "QuantizeBias": not symmetric_activations})
    except Exception as exc:
        raise ExportError(f"int8 quantisation failed: {str(exc).splitlines()[0]}") from None
    finally:
        prep.unlink(missing_ok=True)
    check_onnx(dst)
    return dst


def build(ctx, precision: str, base_onnx: Path, target: Path, work: Path) -> tuple[Path, dict]:
    """The ``onnx`` row of :data:`export.formats.FORMATS`: fp32 is the base graph, fp16 converted with fp32 I/O,
    int8 a QDQ graph (onnxruntime static U8S8) refined by the float fallback."""
    cfg, options = ctx.cfg, {}
    if precision == "fp32":
        shutil.copyfile(base_onnx, target)
    elif precision == "fp16":
        to_fp16(base_onnx, target)
    else:
        calibration = calibrate(ctx, base_onnx, target, work)
        options = {"per_channel": cfg.per_channel, "exclude_nodes": list(cfg.exclude_nodes),
                   "calibration_images": cfg.calib_size, "activations": "uint8", "weights": "int8",
                   "calibration": calibration, "fallback": onnx_fallback(ctx, target).to_dict()}
    options["opset"] = cfg.opset
    return target, options


def calibrate(ctx, base_onnx: Path, target: Path, work: Path) -> dict:
    """Quantise ``base_onnx`` into ``target`` with the calibrator ``--calibration`` names; with ``auto``, each of
    ``CALIBRATORS`` in turn until one meets the fallback target on the calibration images (else the one with the
    best worst-image cosine; a calibrator that fails is recorded with its error and skipped). Returns
    {"method": chosen, "tried": [{method, passed, min_cosine, mean_cosine} or {method, error}]}."""
    import onnx

    from export.calibration import choose_calibration

    cfg = ctx.cfg
    methods = CALIBRATORS if cfg.calibration == "auto" else (cfg.calibration,)

    def quantize(method: str) -> Path:
        candidate = target if len(methods) == 1 else work / f"int8-{method}.onnx"
        return to_int8(base_onnx, candidate, ctx.calibration(), per_channel=cfg.per_channel,
                       exclude_nodes=cfg.exclude_nodes, batch=ctx.batch, method=method)

    def judge(path: Path):
        graph = QDQGraph(onnx.load(str(path)))
        return ctx.judge_int8(graph.runner(graph.model))

    chosen, record = choose_calibration(methods, quantize, judge)
    if chosen != target:
        shutil.copyfile(chosen, target)
    return record
