"""Teachers from every kind of spec, their preprocessing, and checkpoint key handling."""
from pathlib import Path

import pytest
import torch
from torch import nn

from distill.checkpoint_keys import match_state_dict
from distill.core.errors import ModelError
from distill.core.preprocess import Preprocess, sidecar_path
from distill.teachers import TeacherOptions, load_teacher

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_sidecar_name_stops_at_the_first_dot():
    assert sidecar_path("/t/cifar_resnet56.torchscript.pt").name == "cifar_resnet56.json"
    assert sidecar_path("/t/cifar_resnet56.onnx").name == "cifar_resnet56.json"


@pytest.mark.testbed
def test_onnx_and_torchscript_teachers_agree_and_read_the_sidecar(testbed):
    onnx = load_teacher(str(testbed / "teachers" / "cifar_resnet56.onnx"))
    ts = load_teacher(str(testbed / "teachers" / "cifar_resnet56.torchscript.pt"))
    assert onnx.preprocess == ts.preprocess
    assert onnx.preprocess.input_size == 32 and onnx.preprocess.mean == (0.485, 0.456, 0.406)
    assert onnx.embedding_dim == ts.embedding_dim == 64
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(onnx(x), ts(x), atol=1e-4)
    assert not any(p.requires_grad for p in ts.module.parameters())


@pytest.mark.testbed
def test_flags_override_the_sidecar(testbed):
    t = load_teacher(str(testbed / "teachers" / "cifar_autoencoder384.onnx"),
                     TeacherOptions(mean=(0.1, 0.2, 0.3)))
    assert t.preprocess.mean == (0.1, 0.2, 0.3) and t.preprocess.std == (0.5, 0.5, 0.5)
    assert t.embedding_dim == 384


@pytest.mark.testbed
def test_raw_third_party_checkpoint_with_user_architecture(testbed):
    """akamaster's ResNet-56: 'module.' keys, a classifier to drop, an architecture from a user's file."""
    raw = testbed / "teachers" / "raw" / "akamaster_resnet56-4bfd9763.th"
    opts = TeacherOptions(arch=f"{ASSETS / 'cifar_resnet.py'}:resnet56", drop_head=("linear",),
                          input_size=32)
    teacher = load_teacher(str(raw), opts)
    reference = load_teacher(str(testbed / "teachers" / "cifar_resnet56.torchscript.pt"))
    x = torch.randn(3, 3, 32, 32)
    assert teacher.embedding_dim == 64
    assert torch.allclose(teacher(x), reference(x), atol=1e-4)


@pytest.mark.testbed
def test_raw_checkpoint_errors_name_the_fix(testbed):
    raw = str(testbed / "teachers" / "raw" / "akamaster_resnet56-4bfd9763.th")
    with pytest.raises(ModelError, match="--teacher-arch"):
        load_teacher(raw)
    arch = f"{ASSETS / 'cifar_resnet.py'}:resnet56"
    logits = load_teacher(raw, TeacherOptions(arch=arch, input_size=32))  # head kept: the "embedding" is logits
    assert logits.embedding_dim == 10
    with pytest.raises(ModelError, match="missing"):
        load_teacher(raw, TeacherOptions(arch="timm:resnet18", drop_head=("fc", "linear")))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def test_moco_layout_maps_onto_the_encoder():
    src = Tiny().state_dict()
    ckpt = {f"module.encoder_q.{k}": v for k, v in src.items()}
    ckpt.update({f"module.encoder_k.{k}": v + 1 for k, v in src.items()})
    ckpt["module.queue"] = torch.zeros(4, 8)
    ckpt["module.queue_ptr"] = torch.zeros(1)
    target = Tiny()
    target.fc = nn.Identity()
    mapped = match_state_dict(ckpt, target, drop_heads=("fc",))
    assert set(mapped) == set(target.state_dict())
    assert torch.equal(mapped["conv.weight"], src["conv.weight"])  # the query encoder, not the momentum copy


def test_dino_and_plain_prefixes_map_too():
    src = Tiny().state_dict()
    for prefix in ("backbone.", "model.", ""):
        ckpt = {f"{prefix}{k}": v for k, v in src.items()}
        assert set(match_state_dict(ckpt, Tiny())) == set(src)


def test_mismatch_lists_missing_unexpected_and_shape():
    src = Tiny().state_dict()
    src["extra.weight"] = torch.zeros(1)
    src["conv.weight"] = torch.zeros(1, 1)
    del src["bn.bias"]
    with pytest.raises(ModelError) as exc:
        match_state_dict(src, Tiny(), source="x.pth")
    msg = str(exc.value)
    assert "1 missing (bn.bias)" in msg and "1 unexpected (extra.weight)" in msg and "1 with another shape (conv.weight)" in msg


def test_timm_teacher_with_a_weights_file(tmp_path):
    import timm

    src = timm.create_model("resnet10t", num_classes=7)
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w.pth")
    teacher = load_teacher("timm:resnet10t", TeacherOptions(weights=str(tmp_path / "w.pth"), drop_head=("fc",),
                                                            input_size=32))
    src.reset_classifier(0)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(teacher(x), src.eval()(x), atol=1e-5)
    assert teacher.preprocess.input_size == 32


def test_a_classifier_in_the_checkpoint_suggests_dropping_the_head(tmp_path):
    import timm

    torch.save(timm.create_model("resnet10t", num_classes=7).state_dict(), tmp_path / "w.pth")
    with pytest.raises(ModelError, match="unexpected \\(fc.bias, fc.weight\\); pass --teacher-drop-head"):
        load_teacher(str(tmp_path / "w.pth"), TeacherOptions(arch="timm:resnet10t", input_size=32))
    # by name (a hub teacher), timm's own loader drops the classifier of a model built with num_classes=0
    assert load_teacher("timm:resnet10t", TeacherOptions(weights=str(tmp_path / "w.pth"), input_size=32)).embedding_dim


def test_unfetchable_pretrained_weights_name_the_flag():
    with pytest.raises(ModelError, match="--teacher-weights"):
        load_teacher("timm:resnet10t")  # HF_HUB_OFFLINE=1 in the tests: no download possible


def test_bad_specs_are_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="neither an existing file"):
        load_teacher(str(tmp_path / "missing.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="valid ONNX"):
        load_teacher(str(bad), TeacherOptions(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3))


def test_preprocess_from_sidecar_dict():
    pre = Preprocess.from_dict({"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3})
    assert pre.input_size == 32 and pre.std == (0.25, 0.25, 0.25) and pre.crop_pct == 1.0
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(pre.from_uint8(x), torch.full((1, 3, 2, 2), 2.0))
    with pytest.raises(ModelError):
        Preprocess.from_dict({"input_size": [3, 32, 48]})
