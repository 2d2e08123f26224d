"""OpenVINO IR (.xml + .bin) from the fp32 ONNX: fp32, fp16 weight compression, int8 through NNCF.

``openvino.save_model`` compresses weights to fp16 by default: fp32 artifacts pass ``compress_to_fp16=False``.
int8 uses NNCF post-training quantisation on calibration images; with labelled images and a maximum kNN drop,
``nncf.quantize_with_accuracy_control`` reverts the layers that cost the most accuracy until the drop holds.
``FakeQuantizeGraph`` measures and bypasses the activation quantizers for the float fallback (export.fallback).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from distill.core.deps import require
from export.errors import ExportError


def export_openvino_ir(onnx_fp32: Path, xml: Path, precision: str, calib: np.ndarray | None = None,
                       subset_size: int = 300, accuracy: tuple[np.ndarray, Callable] | None = None,
                       max_drop: float | None = None, refine: Callable | None = None,
                       methods: tuple[str, ...] = ("minmax",), judge: Callable | None = None):
    """Convert, quantise (int8), optionally ``refine`` the quantised ``ov.Model`` (the float fallback: ``refine``
    returns the model to save and what it found), save. Returns (what ``refine`` found, the calibration record).

    int8 with several ``methods`` (activation range estimators, ``RANGES``): each in turn, judged by ``judge``
    (``ov.Model`` -> ParityResult) until one passes, else the one with the best worst-image cosine."""
    ov = require("openvino", "openvino", "OpenVINO export")
    found, calibration = None, None
    try:
        model = ov.convert_model(str(onnx_fp32))
    except Exception as exc:
        raise ExportError(f"openvino.convert_model failed: {str(exc).splitlines()[0]}") from None
    if precision == "int8":
        from export.calibration import choose_calibration

        converted = model
        model, calibration = choose_calibration(
            methods, lambda method: _quantize(converted.clone(), calib, subset_size, accuracy, max_drop, method), judge)
        if refine is not None:
            model, found = refine(model)
    tmp = xml.with_name(f".{xml.stem}.tmp.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=precision == "fp16")
        tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
        tmp.replace(xml)
    except Exception as exc:
        raise ExportError(f"openvino.save_model failed: {str(exc).splitlines()[0]}") from None
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return found, calibration


def build(ctx, precision: str, base_onnx: Path, target: Path, work: Path) -> tuple[Path, dict]:
    """The ``openvino`` row of :data:`export.formats.FORMATS`: IR converted from the base ONNX; int8 by NNCF
    (MIXED preset, min-max ranges, accuracy control with --max-knn-drop) refined by the float fallback."""
    if precision != "int8":
        export_openvino_ir(base_onnx, target, precision)
        return target, {}
    cfg = ctx.cfg
    methods = tuple(RANGES) if cfg.calibration == "auto" else (cfg.calibration,)
    found, calibration = export_openvino_ir(
        base_onnx, target, precision, ctx.calibration(), cfg.calib_size, ctx.accuracy_data(), cfg.max_knn_drop,
        refine=lambda model: openvino_fallback(ctx, model), methods=methods,
        judge=lambda model: ctx.judge_int8(FakeQuantizeGraph.runner(model)))
    return target, {"subset_size": cfg.calib_size, "max_knn_drop": cfg.max_knn_drop, "preset": "mixed",
                    "activation_ranges": calibration["method"], "calibration": calibration,
                    "fallback": found.to_dict()}


def _quantize(model, calib, subset_size, accuracy, max_drop, method: str = "minmax"):
    nncf = require("nncf", "openvino", "int8 quantisation with NNCF")
    if calib is None or len(calib) == 0:
        raise ExportError("int8 needs calibration images: pass --calib DIR")
    items = [calib[i:i + 1] for i in range(len(calib))]
    dataset = nncf.Dataset(items)
    subset = min(subset_size, len(items))
    preset, advanced = nncf_options(nncf, method)
    try:
        if accuracy is not None and max_drop is not None:
            val_images, metric = accuracy
            val = nncf.Dataset([val_images[i:i + 1] for i in range(len(val_images))])
            return nncf.quantize_with_accuracy_control(
                model, calibration_dataset=dataset, validation_dataset=val, validation_fn=metric,
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=subset, preset=preset,
                advanced_quantization_parameters=advanced)
        return nncf.quantize(model, dataset, subset_size=subset, preset=preset, advanced_parameters=advanced)
    except Exception as exc:
        raise ExportError(f"NNCF quantisation failed: {str(exc).splitlines()[0]}") from None


# NNCF activation range estimators behind --calibration (the names of onnxruntime's calibrators they stand for):
# minmax: extremes over the whole calibration set; percentile: per image the 1e-4 / 1 - 1e-4 quantiles, then their
# extremes over the images (outliers inside an image clipped, no image's range cut short); entropy: NNCF's
# HISTOGRAM estimator, the range minimising the quantisation error on the histogram (the role of onnxruntime's
# and TensorRT's entropy calibration: a range chosen from the distribution, not its extremes)
RANGES = ("minmax", "percentile", "entropy")


def nncf_options(nncf, method: str = "minmax") -> tuple:
    """MIXED preset (asymmetric activations, as onnxruntime's uint8) and the activation range estimator ``method``
    (``RANGES``). min-max over the whole calibration set is the first: NNCF's default range is an average of
    per-image extremes, which clips the images with the largest activations: the one-epoch MobileNetV3 student's
    int8 failed the gate on its worst image (cosine 0.33, docs/EXPORT.md at commit 7ac5dfd) and passes as plain
    int8 with min-max (docs/EXPORT.md)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import (AggregatorType, RangeEstimatorParameters,
                                                   RangeEstimatorParametersSet, StatisticsCollectorParameters,
                                                   StatisticsType)

    if method == "percentile":
        ranges = RangeEstimatorParameters(
            min=StatisticsCollectorParameters(statistics_type=StatisticsType.QUANTILE,
                                              aggregator_type=AggregatorType.MIN, quantile_outlier_prob=1e-4),
            max=StatisticsCollectorParameters(statistics_type=StatisticsType.QUANTILE,
                                              aggregator_type=AggregatorType.MAX, quantile_outlier_prob=1e-4))
    elif method == "entropy":
        ranges = RangeEstimatorParametersSet.HISTOGRAM
    else:
        ranges = RangeEstimatorParametersSet.MINMAX
    return nncf.QuantizationPreset.MIXED, AdvancedQuantizationParameters(activations_range_estimator_params=ranges)


class FakeQuantizeGraph:
    """The activation quantizers of an NNCF-quantised ``ov.Model`` (FakeQuantize nodes on non-constant inputs;
    NNCF stores weights already compressed to int8), measured and bypassed as ``export.qdq.QDQGraph`` does."""

    def __init__(self, model):
        self.model = model
        self.fq = {op.get_friendly_name(): op for op in model.get_ordered_ops()
                   if op.get_type_name() == "FakeQuantize"
                   and op.input_value(0).get_node().get_type_name() != "Constant"}

    @property
    def quantizers(self) -> list[str]:
        return list(self.fq)

    def with_float(self, names: list[str]):
        """A copy of the model with the named FakeQuantize nodes bypassed."""
        model = self.model.clone()
        chosen = set(names)
        for op in model.get_ordered_ops():
            if op.get_friendly_name() in chosen and op.get_type_name() == "FakeQuantize":
                op.output(0).replace(op.input_value(0))
        model.validate_nodes_and_infer_types()
        return model

    @staticmethod
    def runner(model):
        """(B, 3, S, S) -> (B, D) with OpenVINO on the CPU, for judging a candidate model."""
        compiled = compile_cpu(model)
        return lambda x: compiled(x)[compiled.outputs[0]]

    def rank(self, images: np.ndarray, batch: int = 32, static: bool = False) -> list[tuple[str, float]]:
        """(quantizer, score in dB) worst first, each measured in isolation with every activation in float."""
        from distill.core.pieces import chunks
        from export.fallback import rank_by_sqnr

        probe = self.with_float(self.quantizers)
        probe.add_outputs([op.input_value(0).get_any_name() for op in self.fq.values()])
        params = {name: [_constant(op.input_value(i)) for i in range(1, 5)] + [op.get_levels()]
                  for name, op in self.fq.items()}
        compiled = compile_cpu(probe)
        first = len(compiled.outputs) - len(self.fq)  # the added outputs come after the model's own

        def batches():
            for part, n in chunks(images, batch, static):
                result = compiled(part)
                values = {name: np.asarray(result[compiled.outputs[first + j]])[:n] for j, name in enumerate(self.fq)}
                yield {name: (x, fake_quantize(x, *params[name])) for name, x in values.items()}

        return rank_by_sqnr(batches())


def fake_quantize(x: np.ndarray, in_lo, in_hi, out_lo, out_hi, levels: int) -> np.ndarray:
    """OpenVINO's FakeQuantize (opset 1) on a float array."""
    width = np.maximum(in_hi - in_lo, np.finfo(np.float32).tiny)
    q = np.rint((np.clip(x, in_lo, in_hi) - in_lo) / width * (levels - 1))
    return (q / (levels - 1) * (out_hi - out_lo) + out_lo).astype(np.float32)


def _constant(value) -> np.ndarray:
    node = value.get_node()
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return np.asarray(node.get_data(), dtype=np.float32)


def compile_cpu(model):
    """Compile for the CPU in f32 inference precision (fp32 means fp32; int8 layers stay int8)."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def openvino_fallback(ctx, model):
    """``export_openvino_ir``'s refine step: the NNCF-quantised ``ov.Model`` -> (the model to save, its
    FallbackResult), searched by export.fallback with ``ctx`` (export.context.BuildContext)."""
    from export.fallback import find_float_set

    graph = FakeQuantizeGraph(model)
    result = find_float_set(graph, ctx)
    return (graph.with_float(result.float_quantizers) if result.float_quantizers else model), result
