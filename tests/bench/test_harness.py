"""What bench times: the model's call with its input (and output) bound once, and the harness's own cost from an
empty model, reported beside the rows."""
import json

import numpy as np
import pytest
import torch

from bench.runner import BenchConfig, run_bench
from export.backends import load_backend


def _onnx(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), str(tmp_path / "m.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (tmp_path / "m.json").write_text(json.dumps({"input_size": 16}))
    return tmp_path / "m.onnx"


def test_bound_runs_are_the_same_model_call(tmp_path):
    backend = load_backend(_onnx(tmp_path), threads=1)
    x = np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)
    run = backend.bound(x)
    for _ in range(3):
        run()
    assert np.allclose(backend(x), backend(x.copy()))  # binding left the ordinary path as it was


def test_openvino_binding_computes_what_the_backend_does(tmp_path):
    ov = pytest.importorskip("openvino", reason="needs the openvino extra")
    onnx_file = _onnx(tmp_path)
    ov.save_model(ov.convert_model(str(onnx_file)), str(tmp_path / "m.xml"), compress_to_fp16=False)
    backend = load_backend(tmp_path / "m.xml", threads=1)
    x = np.random.default_rng(1).normal(size=(2, 3, 16, 16)).astype(np.float32)
    expected = backend(x)
    backend.bound(x)()
    assert np.allclose(backend.request.get_output_tensor(0).data, expected, atol=1e-6)


def test_openvino_compiles_each_batch_shape_static_and_computes_the_same(tmp_path):
    ov = pytest.importorskip("openvino", reason="needs the openvino extra")
    from export.backends.openvino_backend import KEEP_SHAPES

    onnx_file = _onnx(tmp_path)
    ov.save_model(ov.convert_model(str(onnx_file)), str(tmp_path / "m.xml"), compress_to_fp16=False)
    backend = load_backend(tmp_path / "m.xml", threads=1)
    dynamic = ov.Core().compile_model(str(tmp_path / "m.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    rng = np.random.default_rng(2)
    for n in range(1, KEEP_SHAPES + 3):
        x = rng.normal(size=(n, 3, 16, 16)).astype(np.float32)
        compiled, _ = backend.compiled_for(x.shape)
        assert compiled.inputs[0].get_partial_shape().is_static and compiled.inputs[0].get_shape()[0] == n
        assert np.allclose(backend(x), dynamic({0: x})[0], atol=1e-5)
    assert len(backend._static) == KEEP_SHAPES  # the oldest shapes were let go
    assert backend.compiled_for((KEEP_SHAPES + 2, 3, 16, 16))[0] is compiled  # the latest one is kept


def test_the_report_states_the_harness_overhead(tmp_path):
    report = run_bench(BenchConfig(targets=[str(_onnx(tmp_path))], batch_sizes=(1, 2), warmup_s=0.02, min_time_s=0.05,
                                   min_runs=3, rounds=1, out=str(tmp_path / "r")))
    harness = report["harness"]
    ort = harness["p50_ms"]["onnxruntime"]
    assert harness["measured"] and set(ort) == {"1", "2"} and all(v > 0 for v in ort.values())
    try:
        import openvino  # noqa: F401
    except ModuleNotFoundError:
        assert "openvino" not in harness["p50_ms"]
    else:
        assert set(harness["p50_ms"]["openvino"]) == {"1", "2"}
    assert "Harness overhead (p50 of an empty model" in (tmp_path / "r" / "report.md").read_text()
