"""OpenVINO IR (.xml + .bin) from the fp32 ONNX: fp32, fp16 weight compression, int8 through NNCF.

``openvino.save_model`` compresses weights to fp16 by default: fp32 artifacts pass ``compress_to_fp16=False``.
int8 uses NNCF post-training quantisation on calibration images; with labelled images and a maximum kNN drop,
``nncf.quantize_with_accuracy_control`` reverts the layers that cost the most accuracy until the drop holds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from distill._deps import require
from export.errors import ExportError


def export_openvino_ir(onnx_fp32: Path, xml: Path, precision: str, calib: np.ndarray | None = None,
                       subset_size: int = 300, accuracy: tuple[np.ndarray, Callable] | None = None,
                       max_drop: float | None = None) -> Path:
    ov = require("openvino", "openvino", "OpenVINO export")
    try:
        model = ov.convert_model(str(onnx_fp32))
    except Exception as exc:
        raise ExportError(f"openvino.convert_model failed: {str(exc).splitlines()[0]}") from None
    if precision == "int8":
        model = _quantize(model, calib, subset_size, accuracy, max_drop)
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
    return xml


def _quantize(model, calib, subset_size, accuracy, max_drop):
    nncf = require("nncf", "openvino", "int8 quantisation with NNCF")
    if calib is None or len(calib) == 0:
        raise ExportError("int8 needs calibration images: pass --calib DIR")
    items = [calib[i:i + 1] for i in range(len(calib))]
    dataset = nncf.Dataset(items)
    subset = min(subset_size, len(items))
    try:
        if accuracy is not None and max_drop is not None:
            val_images, metric = accuracy
            val = nncf.Dataset([val_images[i:i + 1] for i in range(len(val_images))])
            return nncf.quantize_with_accuracy_control(
                model, calibration_dataset=dataset, validation_dataset=val, validation_fn=metric,
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=subset)
        return nncf.quantize(model, dataset, subset_size=subset, preset=nncf.QuantizationPreset.PERFORMANCE)
    except Exception as exc:
        raise ExportError(f"NNCF quantisation failed: {str(exc).splitlines()[0]}") from None
