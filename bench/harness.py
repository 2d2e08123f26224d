"""What the benchmark itself costs per call: an empty model (one Flatten node: no arithmetic) timed through the
same worker, binding and timer as every artifact, at every batch size, in onnxruntime and (where installed) in
OpenVINO, whose Python call path differs. A row's p50 minus its runtime's figure is the model; the figures go into
report.json (``harness``) and report.md. Needs the ``onnx`` package to write the model (the training side);
elsewhere the report says it was not measured."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


def empty_model(folder: Path, img_size: int) -> Path | None:
    """folder/empty.onnx (input (N, 3, S, S) -> Flatten -> (N, 3*S*S)) and its sidecar; None without onnx."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ModuleNotFoundError:
        return None
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, img_size, img_size])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 3 * img_size * img_size])
    graph = helper.make_graph([helper.make_node("Flatten", ["input"], ["embedding"], axis=1)], "empty", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "empty.onnx"
    onnx.save(model, str(path))
    path.with_suffix(".json").write_text(json.dumps({"input_size": img_size, "precision": "fp32"}))
    return path


def as_openvino(onnx_path: Path) -> Path | None:
    """The empty model as an OpenVINO IR beside it; None without openvino."""
    try:
        import openvino as ov
    except ModuleNotFoundError:
        return None
    xml = onnx_path.with_suffix(".xml")
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    xml.with_suffix(".json").write_text(onnx_path.with_suffix(".json").read_text())
    return xml


def harness_overhead(run_worker: Callable[[dict], dict], base_job: dict, folder: Path, img_size: int) -> dict[str, Any]:
    """p50 ms of the empty model per runtime and batch size, through ``run_worker`` (bench.runner's, in its own
    process): ``{"p50_ms": {"onnxruntime": {"1": ms, ...}, "openvino": {...}}}``."""
    path = empty_model(folder / "onnxruntime", img_size)
    if path is None:
        return {"measured": False, "why": "the onnx package (train extra) writes the empty model"}
    per_runtime: dict[str, dict] = {}
    for runtime, artifact in (("onnxruntime", path), ("openvino", as_openvino(path))):
        if artifact is None:
            continue
        result = run_worker({**base_job, "task": "timing", "artifact": str(artifact), "images": []})
        if "error" in result:
            continue
        per_runtime[runtime] = {bs: (b.get("infer") or {}).get("p50_ms") for bs, b in result["batches"].items()}
    return {"measured": bool(per_runtime), "model": "one Flatten node", "img_size": img_size, "p50_ms": per_runtime}
