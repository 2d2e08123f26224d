"""Students by name, their embeddings, and small inputs."""
import pytest
import torch
from torch import nn

from distill.core.errors import ModelError
from distill.students import adapt_small_input, create_student, drop_final_linear, registered_students


@pytest.mark.parametrize("name,dim", [("alexnet", 4096), ("mobilenetv3_large_100", 1280), ("efficientnet_b0", 1280),
                                      ("resnet18_cifar", 512)])
def test_registered_students_embed_32px_images(name, dim):
    student = create_student(name, img_size=32).eval()
    with torch.no_grad():
        out = student(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, dim) == (2, student.num_features)


def test_resnet18_cifar_keeps_a_4x4_map_at_32px_and_rebuilds_from_its_state_dict():
    student = create_student("resnet18_cifar", img_size=32).eval()
    imagenet_stem = create_student("timm:resnet18", img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert student.backbone.forward_features(x).shape == (2, 512, 4, 4)  # stride 8 in all, not 32
        assert imagenet_stem.backbone.forward_features(x).shape == (2, 512, 1, 1)
        assert student.backbone.conv1.kernel_size == (3, 3) and student.backbone.conv1.stride == (1, 1)
        again = create_student("resnet18_cifar", img_size=32).eval()
        again.load_state_dict(student.state_dict())  # the same keys and shapes: checkpoints rebuild by name
        assert torch.equal(again(x), student(x))
    with pytest.raises(ModelError, match="no pretrained weights"):
        create_student("resnet18_cifar", pretrained=True)


def test_alexnet_pools_are_adapted_only_where_needed():
    import torchvision

    stock = torchvision.models.alexnet()
    with pytest.raises(RuntimeError, match="too small"):
        stock(torch.randn(1, 3, 32, 32))
    fixed = adapt_small_input(torchvision.models.alexnet(), 32)
    assert fixed == ["features.12", "avgpool"]  # the 6x6 pooling of a 1x1 map becomes exportable
    assert adapt_small_input(torchvision.models.alexnet(), 224) == []


@pytest.mark.parametrize("in_hw,out_hw", [((1, 1), (6, 6)), ((5, 7), (3, 2)), ((13, 13), (6, 6)), ((4, 4), (2, 2))])
def test_fixed_adaptive_pool_matches_pytorch(in_hw, out_hw):
    from distill.students import FixedAdaptiveAvgPool2d

    x = torch.randn(2, 3, *in_hw)
    expected = torch.nn.AdaptiveAvgPool2d(out_hw)(x)
    assert torch.allclose(FixedAdaptiveAvgPool2d(in_hw, out_hw)(x), expected, atol=1e-6)


def test_alexnet_at_32px_exports_to_onnx(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from export.onnx_export import BatchSpec, torch_to_onnx

    student = create_student("alexnet", img_size=32).eval()
    assert "avgpool" not in student.state_dict() and len(student.state_dict()) == 14  # weights unchanged
    torch_to_onnx(student, 32, tmp_path / "a.onnx", BatchSpec(), 17)
    x = torch.randn(3, 3, 32, 32)
    sess = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(out, student(x).numpy(), atol=1e-4)


def test_any_timm_or_torchvision_name_works_with_or_without_prefix():
    assert create_student("resnet10t", img_size=32).num_features == 512  # timm
    tv = create_student("torchvision:mobilenet_v3_small", img_size=64)
    assert tv.num_features == 1024 and tv(torch.randn(2, 3, 64, 64)).shape == (2, 1024)
    with pytest.raises(ModelError, match="cannot find the classifier of SqueezeNet"):
        create_student("squeezenet1_0")  # a convolutional classifier: not supported, said so
    assert create_student("timm:mobilenetv3_small_050", img_size=32).num_features == 1024


def test_unknown_student_lists_the_registered_ones_and_close_matches():
    with pytest.raises(ModelError) as exc:
        create_student("mobilenetv3_large_10")
    msg = str(exc.value)
    assert all(n in msg for n in registered_students())
    assert "mobilenetv3_large_100" in msg.split("close matches:")[1]


def test_drop_final_linear_keeps_the_penultimate_layer():
    model = nn.Sequential()
    model.classifier = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    assert drop_final_linear(model) == 6
    assert isinstance(model.classifier[2], nn.Identity)
