"""Reading an ONNX file's metadata_props without the onnx package (distill.core.onnx_props), checked against
onnx's own parser."""
import onnx
import pytest
from onnx import TensorProto, helper

from distill.core.onnx_props import OnnxFormatError, read_metadata_props


def _model(path, props: dict[str, str]):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.5] * 16)
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["embedding"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_reads_what_onnx_reads(tmp_path):
    props = {"edgedistill": '{"input_size": 32, "name": "é"}', "author": "x" * 300}
    path = _model(tmp_path / "m.onnx", props)
    assert read_metadata_props(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props} == props
    assert read_metadata_props(_model(tmp_path / "none.onnx", {})) == {}


@pytest.mark.parametrize("damage", ["truncated", "appended", "not onnx"])
def test_a_damaged_file_is_refused(tmp_path, damage):
    data = _model(tmp_path / "m.onnx", {"k": "v"}).read_bytes()
    bad = {"truncated": data[: len(data) // 2], "appended": data + b"\x00",
           "not onnx": b"<?xml version='1.0'?><net/>"}[damage]
    (tmp_path / "bad.onnx").write_bytes(bad)
    with pytest.raises(OnnxFormatError):
        read_metadata_props(tmp_path / "bad.onnx")
