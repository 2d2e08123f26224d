"""Everything up to TensorRT's builder call: the ONNX it consumes, the optimisation profile, the flags."""
import numpy as np
import onnx
import pytest

from distill.core.errors import MissingDependencyError
from distill.students import create_student
from export.errors import ExportError
from export.onnx_export import BatchSpec, to_int8, torch_to_onnx
from export.tensorrt_export import build_engine, check_available, plan_engine


@pytest.fixture(scope="module")
def base_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("trt") / "base.onnx"
    return torch_to_onnx(create_student("resnet10t", img_size=32), 32, path, BatchSpec(min=1, opt=4, max=16))


@pytest.mark.parametrize("precision,flags", [("fp32", ()), ("fp16", ("FP16",)), ("int8", ("INT8", "FP16"))])
def test_plan_flags_profile_and_workspace(base_onnx, tmp_path, precision, flags):
    plan = plan_engine(base_onnx, tmp_path / "m.engine", precision, 32, BatchSpec(min=1, opt=4, max=16), workspace_gb=2)
    assert plan.flags == flags and plan.trt_major == 10 and not plan.strongly_typed
    assert plan.clear_flags == (("TF32",) if precision == "fp32" else ())
    assert (plan.min_shape, plan.opt_shape, plan.max_shape) == ((1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))
    assert plan.workspace_bytes == 2 << 30 and plan.input_name == "input"
    assert plan.timing_cache.endswith("tensorrt.timing.cache")


def test_static_batch_gives_a_fixed_profile(base_onnx, tmp_path):
    plan = plan_engine(base_onnx, tmp_path / "m.engine", "fp16", 32, BatchSpec(static=8))
    assert plan.min_shape == plan.opt_shape == plan.max_shape == (8, 3, 32, 32)


def test_bad_plans_are_refused(base_onnx, tmp_path):
    with pytest.raises(ExportError, match="MIN <= OPT <= MAX"):
        plan_engine(base_onnx, tmp_path / "m.engine", "fp32", 32, BatchSpec(min=8, opt=4, max=16))
    with pytest.raises(ExportError, match="workspace"):
        plan_engine(base_onnx, tmp_path / "m.engine", "fp32", 32, BatchSpec(), workspace_gb=0)


def test_the_onnx_tensorrt_parses_has_a_dynamic_batch(base_onnx):
    model = onnx.load(str(base_onnx))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == "input" and dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert model.opset_import[0].version >= 17


def test_int8_onnx_for_tensorrt_is_symmetric_qdq(base_onnx, tmp_path):
    calib = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    qdq = to_int8(base_onnx, tmp_path / "qdq.onnx", calib, symmetric_activations=True)
    model = onnx.load(str(qdq))
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quant, "no QuantizeLinear nodes"
    inits = {i.name: i for i in model.graph.initializer}
    for node in quant:
        zp = inits[node.input[2]]
        assert zp.data_type == onnx.TensorProto.INT8  # signed: TensorRT's explicit quantisation
        assert not onnx.numpy_helper.to_array(zp).any()  # zero points at 0: symmetric
    # TensorRT's dequantize layer takes INT8 (FP8, INT4, FP4) inputs only: no INT32 bias may reach one
    produced = {n.output[0]: n for n in model.graph.node}
    dequant = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert dequant
    for node in dequant:
        src = node.input[0]
        if src in inits:
            assert inits[src].data_type == onnx.TensorProto.INT8, f"{node.name} reads {inits[src].data_type}"
        else:
            assert produced[src].op_type == "QuantizeLinear"  # an activation: int8 by its zero point


def test_missing_tensorrt_names_the_extra_and_cuda(base_onnx, tmp_path):
    try:
        check_available()
    except (MissingDependencyError, ExportError) as exc:
        assert "edgedistill[tensorrt]" in str(exc)
    else:
        pytest.skip("TensorRT and a GPU are present")


@pytest.mark.tensorrt
def test_engine_builds_and_runs(base_onnx, tmp_path):
    plan = plan_engine(base_onnx, tmp_path / "m.engine", "fp16", 32, BatchSpec(min=1, opt=4, max=16))
    assert build_engine(plan).stat().st_size > 0
