"""Hub teachers (distill.hub): names and aliases resolved through timm offline, local weight files, the input size
passed to timm, the ViT embedding choices, the licence carried into student.pt and the artifacts; fixed-batch ONNX
teachers and models. No downloads: architectures are built without weights and their weights saved by the test."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill.config import default_img_size
from distill.core.errors import ModelError
from distill.hub import ALIASES, hub_name
from distill.teachers import TeacherOptions, load_teacher
from tests.conftest import colour_gallery, run_cli

DINOV2 = "vit_small_patch14_dinov2"
DINOV3 = "vit_small_patch16_dinov3"


def test_names_and_aliases_resolve_offline():
    import timm

    assert hub_name("dinov2/vits14") == "vit_small_patch14_dinov2.lvd142m"
    assert hub_name("hf-hub:timm/vit_small_patch14_dinov2.lvd142m") == "vit_small_patch14_dinov2.lvd142m"
    assert hub_name("timm:resnet18") == "resnet18" and hub_name("torchvision:resnet18") is None
    known = set(timm.list_pretrained())
    assert all(name in known for name in ALIASES.values())  # every alias is a timm weight
    with pytest.raises(ModelError, match="known aliases: dinov2/vits14"):
        hub_name("dinov2/vitx99")
    with pytest.raises(ModelError, match="only timm's own hub models"):
        hub_name("hf-hub:facebook/dinov2-small")


def test_the_student_size_rule():
    assert default_img_size(518, 32) == 32  # CIFAR under a DINOv2 teacher: the images' own size
    assert default_img_size(518, 480) == 224  # large images: at most 224
    assert default_img_size(32, 32) == 32 and default_img_size(64, None) == 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """{arch: a .safetensors file} of randomly initialised DINOv2- and DINOv3-style ViT-S, as the hub serves them."""
    import timm
    from safetensors.torch import save_file

    folder, files = tmp_path_factory.mktemp("hub"), {}
    torch.manual_seed(0)
    for arch in (DINOV2, DINOV3):
        model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=224)
        files[arch] = folder / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(files[arch]))
    return files


@pytest.mark.slow
@pytest.mark.parametrize("arch,alias", [(DINOV2, "dinov2/vits14"), (DINOV3, "dinov3/vits16")])
def test_a_vit_teacher_from_a_local_file_at_224_and_32(weights, arch, alias):
    import timm

    reference = timm.create_model(arch, pretrained=False, num_classes=0, img_size=224).eval()
    reference.load_state_dict(_load(weights[arch]))
    teacher = load_teacher(alias, TeacherOptions(weights=str(weights[arch])))
    assert teacher.preprocess.input_size == 224  # not timm's 518 (DINOv2) or 256 (DINOv3)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference.forward_features(x)[:, 0]  # the class token, after the final norm
    assert torch.allclose(teacher(x), expected, atol=1e-5)
    small = load_teacher(alias, TeacherOptions(weights=str(weights[arch]), input_size=32))
    out = small(torch.randn(3, 3, 32, 32))
    assert small.preprocess.input_size == 32 and out.shape == (3, 384) and torch.isfinite(out).all()


def _load(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.slow
def test_each_embedding_choice(weights):
    x = torch.randn(2, 3, 224, 224)
    outs = {e: load_teacher("dinov3/vits16", TeacherOptions(weights=str(weights[DINOV3]), embedding=e))(x)
            for e in ("cls", "mean", "cls+mean", "head")}
    assert outs["cls"].shape == outs["mean"].shape == (2, 384) and outs["cls+mean"].shape == (2, 768)
    assert torch.allclose(outs["cls+mean"], torch.cat([outs["cls"], outs["mean"]], 1))
    assert not torch.allclose(outs["cls"], outs["mean"])
    assert outs["head"].shape == (2, 384)


def test_a_restricted_licence_is_recorded_and_warned(weights):
    with pytest.warns(UserWarning, match="DINOv3 License"):
        teacher = load_teacher("dinov3/vits16", TeacherOptions(weights=str(weights[DINOV3]), input_size=32))
    assert teacher.licence == "dinov3-license"
    assert load_teacher("dinov2/vits14", TeacherOptions(weights=str(weights[DINOV2]), input_size=28)).licence == "apache-2.0"


@pytest.mark.slow
def test_train_and_export_carry_the_licence(weights, tmp_path):
    root = colour_gallery(tmp_path, size=40)
    out = tmp_path / "run"
    trained = run_cli("distill", "train", "--data", str(root / "gallery"), "--teacher", "dinov3/vits16",
                      "--teacher-weights", str(weights[DINOV3]), "--student", "mobilenetv3_small_050",
                      "--batch-size", "4", "--max-steps", "1", "--queue-size", "16", "--workers", "0",
                      "--device", "cpu", "--out", str(out), "--json")
    assert trained.returncode == 0, trained.stderr
    assert "DINOv3 License" in trained.stderr and "student input 40 px" in trained.stderr
    saved = torch.load(out / "student.pt", weights_only=True)
    assert saved["teacher_licence"] == "dinov3-license" and saved["img_size"] == 40  # the teacher saw 224
    exported = run_cli("distill", "export", "--model", str(out), "--format", "onnx", "--timing-s", "0",
                       "--parity-data", str(root / "gallery"), "--json")
    assert exported.returncode == 0, exported.stderr
    from export.metadata import read_metadata

    report = json.loads(exported.stdout.strip().splitlines()[-1])
    assert report["source"]["teacher_licence"] == "dinov3-license"
    assert read_metadata(report["artifacts"][0]["path"])["source"]["teacher_licence"] == "dinov3-license"


@pytest.mark.slow
@pytest.mark.parametrize("alias,arch,size", [("dinov2/vits14", DINOV2, "32"), ("dinov3/vits16", DINOV3, "224")])
def test_cache_teacher_with_a_vit(weights, tmp_path, alias, arch, size):
    root = colour_gallery(tmp_path, size=40)
    proc = run_cli("distill", "cache-teacher", "--data", str(root / "gallery"), "--teacher", alias,
                   "--teacher-weights", str(weights[arch]), "--teacher-input-size", size, "--workers", "0",
                   "--device", "cpu", "--out", str(tmp_path / "cache"), "--json")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["dim"] == 384 and meta["num_images"] == 24


@pytest.mark.slow
def test_a_batch_one_onnx_as_teacher_model_and_index(tmp_path):
    """torch.onnx.export's default: a fixed batch of 1. It runs in pieces of its batch everywhere."""
    root = colour_gallery(tmp_path, size=32)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten()).eval()
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 32, 32), str(path), input_names=["input"], output_names=["embedding"],
                      dynamo=False)
    (tmp_path / "fixed.json").write_text(json.dumps({"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}))
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32)
    assert np.allclose(load_teacher(str(path))(x).numpy(), net(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    common = ("--workers", "0")
    trained = run_cli("distill", "train", "--data", str(root / "gallery"), "--teacher", str(path), "--student",
                      "mobilenetv3_small_050", "--batch-size", "4", "--max-steps", "1", "--queue-size", "16",
                      "--device", "cpu", "--out", str(tmp_path / "run"), *common)
    assert trained.returncode == 0, trained.stderr
    scored = run_cli("distill", "eval", "--model", str(path), "--train", str(root / "gallery"), "--val",
                     str(root / "queries"), "--json", *common)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout.strip().splitlines()[-1])["num_val"] == 6
    indexed = run_cli("distill", "retrieve", "index", "--model", str(path), "--images", str(root / "gallery"),
                      "--out", str(tmp_path / "index"), "--json", *common)
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout.strip().splitlines()[-1])["num_images"] == 24


def test_a_teacher_failing_on_its_input_size_is_one_error():
    """timm's own assertion (a ViT built for another size) used to reach the user as a traceback."""
    from distill.core.preprocess import Preprocess
    from distill.teachers import TorchTeacher

    class Fixed(torch.nn.Module):
        def forward(self, x):
            assert x.shape[-1] == 32, f"Input height ({x.shape[-1]}) doesn't match model (32)."
            return x.mean((2, 3))

    with pytest.raises(ModelError, match="fails on a 64 px input .*doesn't match model"):
        TorchTeacher(Fixed(), "fixed", Preprocess(input_size=64)).probe_dim()
