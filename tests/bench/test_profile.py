"""bench --profile: per-layer times from onnxruntime's profiler and OpenVINO's performance counters."""
import json

import pytest
import torch

from bench.layers import profile_artifact
from distill.core.cli import main


def _onnx(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), str(tmp_path / "m.onnx"), input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    (tmp_path / "m.json").write_text(json.dumps({"input_size": 16, "precision": "fp32"}))
    return tmp_path / "m.onnx"


def test_onnxruntime_layers_sum_to_the_total(tmp_path):
    p = profile_artifact(_onnx(tmp_path), batch=2, runs=5, threads=1)
    types = {t["type"] for t in p["by_type"]}
    assert p["runtime"] == "onnxruntime" and "Conv" in types and p["us_per_run"] > 0
    assert sum(r["share"] for r in p["layers"]) == pytest.approx(1.0, abs=1e-3)
    assert p["layers"] == sorted(p["layers"], key=lambda r: -r["total_us"])
    assert all(r["kernel"] == "CPUExecutionProvider" for r in p["layers"])


def test_openvino_counters_name_their_kernels(tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO profiling needs the openvino extra")
    import openvino as ov

    onnx_file = _onnx(tmp_path)
    ov.save_model(ov.convert_model(str(onnx_file)), str(tmp_path / "m.xml"), compress_to_fp16=False)
    p = profile_artifact(tmp_path / "m.xml", batch=1, runs=5, threads=1)
    assert p["runtime"] == "openvino" and p["layers"] and all(r["kernel"] for r in p["layers"])
    assert any(t["type"] == "Convolution" for t in p["by_type"])


def test_the_command_writes_its_tables_and_refuses_other_targets(tmp_path, capsys):
    onnx_file = _onnx(tmp_path)
    assert main(["bench", str(onnx_file), "--profile", "--profile-runs", "3", "--batch-sizes", "1"]) == 0
    out = capsys.readouterr().out
    assert "| operator type | us per run | share |" in out and (tmp_path / "bench" / "m.profile.json").is_file()
    assert main(["bench", str(onnx_file), str(onnx_file), "--profile"]) == 2
    assert "--profile takes one artifact file" in capsys.readouterr().err
