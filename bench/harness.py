"""What the benchmark itself costs per call: an empty model (one Flatten node: no arithmetic) timed through the
same worker, binding and timer as every artifact, at every batch size. A row's p50 minus this is the model; the
figure goes into report.json (``harness``) and report.md. Needs the ``onnx`` package to write the model (the
training side); elsewhere the report says it was not measured."""
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
    path = folder / "empty.onnx"
    onnx.save(model, str(path))
    path.with_suffix(".json").write_text(json.dumps({"input_size": img_size, "precision": "fp32"}))
    return path


def harness_overhead(run_worker: Callable[[dict], dict], base_job: dict, folder: Path, img_size: int) -> dict[str, Any]:
    """p50 ms of the empty model per batch size, through ``run_worker`` (bench.runner's, in its own process)."""
    path = empty_model(folder, img_size)
    if path is None:
        return {"measured": False, "why": "the onnx package (train extra) writes the empty model"}
    result = run_worker({**base_job, "task": "timing", "artifact": str(path), "images": []})
    batches = result.get("batches") or {}
    return {"measured": "error" not in result, "model": "one Flatten node (onnxruntime)", "img_size": img_size,
            "p50_ms": {bs: (b.get("infer") or {}).get("p50_ms") for bs, b in batches.items()}}
