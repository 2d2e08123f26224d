"""TensorRT 10.x and 11.x, checked without TensorRT.

The stand-in modules below mirror the parts of the ``tensorrt`` Python surface that :func:`build_engine` uses,
as each major version has them: 10.x with the weak-typing precision flags, 11.x without them (strong typing).
These tests check *our* branching (which flags we set, what we refuse), not TensorRT itself: the GPU file
``tests/export/test_tensorrt_gpu.py`` runs the real thing where TensorRT and a GPU exist.
"""
import json
from enum import IntEnum
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from distill.students import create_student
from export.errors import ExportError
from export.onnx_export import BatchSpec, torch_to_onnx
from export.tensorrt_export import build_engine, needs_fp16_onnx, plan_engine, tensorrt_major, trtexec_command


class _Config:
    def __init__(self, log, cache_ok=True):
        self.log, self.cache_ok = log, cache_ok

    def set_memory_pool_limit(self, pool, size):
        self.log.append(("pool", size))

    def set_flag(self, flag):
        self.log.append(("set", flag))

    def clear_flag(self, flag):
        self.log.append(("clear", flag))

    def add_optimization_profile(self, profile):
        self.log.append(("profile", profile.shapes))

    def create_timing_cache(self, data):
        return None if data == b"corrupt" else SimpleNamespace(serialize=lambda: b"cache")

    def set_timing_cache(self, cache, ignore_mismatch):
        return self.cache_ok

    def get_timing_cache(self):
        return SimpleNamespace(serialize=lambda: b"cache")


def fake_tensorrt(version: str, cache_ok: bool = True):
    """A stand-in ``tensorrt`` module: 10.x has BuilderFlag FP16/INT8/TF32, 11.x only TF32."""
    log = []
    names = ["TF32"] + (["FP16", "INT8"] if version.startswith("10.") else [])
    flag = IntEnum("BuilderFlag", names)

    class Profile:
        shapes = None

        def set_shape(self, name, lo, opt, hi):
            self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            log.append(("network", flags))
            return object()

        def create_builder_config(self):
            return _Config(log, cache_ok)

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"engine"

    class Parser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            return True

    module = SimpleNamespace(
        __version__=version, Logger=SimpleNamespace(WARNING=2, __call__=None), Builder=Builder, OnnxParser=Parser,
        BuilderFlag=flag, MemoryPoolType=SimpleNamespace(WORKSPACE=0),
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    module.Logger = lambda level: None
    module.Logger.WARNING = 2
    return module, log


@pytest.fixture(scope="module")
def base_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("trtv") / "base.onnx"
    return torch_to_onnx(create_student("resnet10t", img_size=32), 32, path, BatchSpec(min=1, opt=4, max=16))


@pytest.mark.parametrize("version,precision,set_flags,strong", [
    ("10.13.0", "fp32", [], False), ("10.13.0", "fp16", ["FP16"], False), ("10.13.0", "int8", ["INT8", "FP16"], False),
    ("11.2.0", "fp32", [], True), ("11.2.0", "fp16", [], True), ("11.2.0", "int8", [], True)])
def test_each_major_version_takes_its_own_path(base_onnx, tmp_path, version, precision, set_flags, strong):
    trt, log = fake_tensorrt(version)
    major = tensorrt_major(trt)
    plan = plan_engine(base_onnx, tmp_path / "m.engine", precision, 32, BatchSpec(min=1, opt=4, max=16),
                       trt_major=major)
    assert build_engine(plan, trt).read_bytes() == b"engine"  # 11.x has no FP16/INT8 attribute to touch
    assert [trt.BuilderFlag(f).name for op, f in log if op == "set"] == set_flags
    assert [trt.BuilderFlag(f).name for op, f in log if op == "clear"] == (["TF32"] if precision == "fp32" else [])
    assert ("network", 2 if strong else 0) in log  # 1 << STRONGLY_TYPED on 11.x
    assert needs_fp16_onnx(precision, major) == (precision == "fp16" and major == 11)


def test_tf32_can_be_allowed_for_fp32(base_onnx, tmp_path):
    trt, log = fake_tensorrt("10.13.0")
    plan = plan_engine(base_onnx, tmp_path / "m.engine", "fp32", 32, BatchSpec(), allow_tf32=True)
    build_engine(plan, trt)
    assert not [entry for entry in log if entry[0] == "clear"]


def test_unsupported_versions_and_mismatched_plans_are_refused(base_onnx, tmp_path):
    with pytest.raises(ExportError, match="not supported"):
        tensorrt_major(SimpleNamespace(__version__="8.6.1"))
    trt, _ = fake_tensorrt("11.0.0")
    plan = plan_engine(base_onnx, tmp_path / "m.engine", "fp16", 32, BatchSpec(), trt_major=10)
    with pytest.raises(ExportError, match="plan is for TensorRT 10.x"):
        build_engine(plan, trt)


def test_a_refused_or_corrupt_timing_cache_names_the_file(base_onnx, tmp_path):
    plan = plan_engine(base_onnx, tmp_path / "m.engine", "fp32", 32, BatchSpec())
    trt, _ = fake_tensorrt("10.13.0", cache_ok=False)
    with pytest.raises(ExportError, match="timing cache"):
        build_engine(plan, trt)
    (tmp_path / "tensorrt.timing.cache").write_bytes(b"corrupt")
    trt, _ = fake_tensorrt("10.13.0")
    with pytest.raises(ExportError, match="delete it"):
        build_engine(plan, trt)


def test_trtexec_command_carries_the_profile_and_the_version_flags(base_onnx, tmp_path):
    p10 = plan_engine(base_onnx, tmp_path / "m.engine", "int8", 32, BatchSpec(min=1, opt=8, max=64))
    cmd = trtexec_command(p10)
    assert "--minShapes=input:1x3x32x32" in cmd and "--optShapes=input:8x3x32x32" in cmd
    assert "--maxShapes=input:64x3x32x32" in cmd and "--int8" in cmd and "--fp16" in cmd
    p11 = plan_engine(base_onnx, tmp_path / "m.engine", "fp32", 32, BatchSpec(), trt_major=11)
    cmd11 = trtexec_command(p11)
    assert "--fp16" not in cmd11 and "--int8" not in cmd11 and "--noTF32" in cmd11


def test_a_batch_outside_the_profile_names_the_range():
    """The backend's own check (TensorRT returns False from set_input_shape; it used to fail later with a
    negative-dimension error). A stand-in context, on the CPU: nothing reaches CUDA before the check."""
    from export.backends.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.device, backend.input_name, backend.batch_range = torch.device("cpu"), "input", (1, 16)
    backend.context = SimpleNamespace(set_input_shape=lambda name, shape: shape[0] <= 16)
    backend.meta = {}
    with pytest.raises(ExportError, match=r"batch 17 is outside the engine's optimisation profile \(batch 1 to 16\)"):
        backend(np.zeros((17, 3, 32, 32), np.float32))


@pytest.mark.testbed
@pytest.mark.slow
def test_onnx_only_writes_the_tensorrt_form_without_tensorrt(student_ckpt, tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("export", "--model", str(student_ckpt), "--format", "tensorrt", "--onnx-only",
                   "--precision", "fp32,fp16,int8", "--trt-version", "11", "--calib-size", "40", "--parity-size", "40",
                   "--out", str(tmp_path), "--json", "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    arts = {a["precision"]: a for a in json.loads(proc.stdout.strip().splitlines()[-1])["artifacts"]}
    assert all(a["status"] == "ok" and a["path"].endswith(".onnx") for a in arts.values()), arts
    assert "--maxShapes=input:64x3x32x32" in arts["int8"]["trtexec"] and "--int8" not in arts["int8"]["trtexec"]
    fp16 = onnx.load(arts["fp16"]["path"])  # 11.x: the graph itself is fp16, with fp32 input and output
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in fp16.graph.initializer)
