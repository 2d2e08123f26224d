"""Students: small image encoders that output a pooled embedding (classifier removed).

``create_student(name)`` accepts the registered names (``alexnet``, ``mobilenetv3_large_100``,
``efficientnet_b0``, ``resnet18_cifar``), any other timm or torchvision classifier name, or an explicit ``timm:NAME`` /
``torchvision:NAME``. Weights start random (the point of distillation); ``pretrained=True`` asks the library for
its own weights where the machine can fetch them.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable

import torch
from torch import nn

from distill.core.errors import ModelError


class Student(nn.Module):
    """An encoder ``(B, 3, S, S) -> (B, num_features)``; ``name`` and ``img_size`` rebuild it from a checkpoint."""

    def __init__(self, backbone: nn.Module, num_features: int, name: str, img_size: int):
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.name = name
        self.img_size = img_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


_REGISTRY: dict[str, Callable[..., Student]] = {}


def remove_dropout(model: nn.Module) -> int:
    """Replace every dropout layer with an identity and zero timm's functional ``drop_rate``; returns how many
    layers were replaced.

    A student is an embedding network, not a classifier: CompRess removes AlexNet's two Dropout(0.5) layers for
    distillation (UMBCvision/CompRess ``models/alexnet.py``), and dropout active in a momentum encoder writes
    noisy anchors. Deployment is unaffected (dropout is an identity in eval mode, and it has no weights).
    """
    replaced = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.modules.dropout._DropoutNd):
            _set_module(model, name, nn.Identity())
            replaced += 1
    if isinstance(getattr(model, "drop_rate", None), float):
        model.drop_rate = 0.0
    return replaced


def register_student(name: str):
    """Decorator: register a student factory ``fn(img_size, pretrained) -> Student`` under ``name``."""

    def wrap(fn):
        _REGISTRY[name] = fn
        return fn

    return wrap


def registered_students() -> list[str]:
    return sorted(_REGISTRY)


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _timm_student(name: str, img_size: int, pretrained: bool) -> Student:
    import timm

    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0)
    except RuntimeError as exc:  # timm raises RuntimeError for unknown names and failed weight downloads
        raise ModelError(f"timm could not build '{name}' ({exc}); check the name or drop --pretrained") from None
    remove_dropout(model)
    return Student(model, probe_dim(model, img_size), name, img_size)


def probe_dim(model: nn.Module, img_size: int) -> int:
    """The embedding width, read off a forward pass (timm's ``num_features`` is not always the output width)."""
    was_training = model.training
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, img_size, img_size))
    model.train(was_training)
    if out.ndim != 2:
        raise ModelError(f"{type(model).__name__} returns shape {tuple(out.shape)}, not a pooled (batch, dim) "
                         "embedding")
    return int(out.shape[1])


def drop_final_linear(model: nn.Module) -> int:
    """Replace the last ``nn.Linear`` of a torchvision classifier head with ``Identity``; return its input width.

    Covers the head attribute names torchvision uses (``fc``, ``classifier``, ``heads``, ``head``). For AlexNet
    this keeps fc6 and fc7, so the embedding is the 4096-d fc7 output.
    """
    for attr in ("fc", "classifier", "heads", "head"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return head.in_features
        linears = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)]
        if linears:
            path, last = linears[-1]
            parent = head
            *parents, leaf = path.split(".")
            for p in parents:
                parent = getattr(parent, p)
            setattr(parent, leaf, nn.Identity())
            return last.in_features
    raise ModelError(f"cannot find the classifier of {type(model).__name__} to remove; use a timm model instead")


class FixedAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d`` for one known input size, as two small averaging matrices: y = P_h x P_w^T.

    Same numbers as PyTorch's adaptive pooling (windows [floor(i*in/out), ceil((i+1)*in/out))), but exportable to
    ONNX when the output size does not divide the input size (AlexNet's 6x6 pooling of a 1x1 map at 32 px).
    The matrices are non-persistent buffers, so state dicts do not change.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        super().__init__()
        self.in_hw, self.out_hw = in_hw, out_hw
        self.register_buffer("ph", self._matrix(in_hw[0], out_hw[0]), persistent=False)
        self.register_buffer("pw", self._matrix(in_hw[1], out_hw[1]), persistent=False)

    @staticmethod
    def _matrix(n_in: int, n_out: int) -> torch.Tensor:
        m = torch.zeros(n_out, n_in)
        for i in range(n_out):
            lo, hi = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, out_h, out_w)
        return torch.matmul(torch.matmul(self.ph, x), self.pw.t())


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent = model
    *parents, leaf = name.split(".")
    for p in parents:
        parent = getattr(parent, p)
    setattr(parent, leaf, module)


def make_pools_exportable(model: nn.Module, img_size: int) -> list[str]:
    """Replace adaptive average pools whose output size does not divide their input at ``img_size`` (ONNX cannot
    export those) with :class:`FixedAdaptiveAvgPool2d`. Returns the replaced layer names."""
    seen: dict[str, tuple[int, int]] = {}
    pools = {n: m for n, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)}

    def record(name: str):
        def hook(module, inputs) -> None:  # returns None: the input is left as it is
            seen.setdefault(name, tuple(inputs[0].shape[-2:]))
        return hook

    hooks = [m.register_forward_pre_hook(record(n)) for n, m in pools.items()]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, img_size, img_size))
    finally:
        for h in hooks:
            h.remove()
    replaced = []
    for name, in_hw in seen.items():
        size = pools[name].output_size
        out_hw = ((size, size) if isinstance(size, int)
                  else tuple(in_hw[i] if s is None else s for i, s in enumerate(size)))
        if any(i % o for i, o in zip(in_hw, out_hw)):
            _set_module(model, name, FixedAdaptiveAvgPool2d(in_hw, out_hw))
            replaced.append(name)
    return replaced


def adapt_small_input(model: nn.Module, img_size: int, max_fixes: int = 8) -> list[str]:
    """Make a network run at ``img_size``: a pooling layer whose input is smaller than its window becomes an
    adaptive pooling to 1x1 (torchvision's AlexNet fails at 32x32 otherwise). Returns the adapted layer names."""
    fixed: list[str] = []
    pools = {m: n for n, m in model.named_modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))}
    for _ in range(max_fixes):
        entered: list[nn.Module] = []
        hooks = [m.register_forward_pre_hook(lambda mod, inp, _e=entered: _e.append(mod)) for m in pools]
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(1, 3, img_size, img_size))
            return fixed + make_pools_exportable(model, img_size)
        except RuntimeError as exc:
            if "too small" not in str(exc) or not entered:
                raise ModelError(f"{type(model).__name__} cannot run at {img_size}x{img_size}: {exc}") from None
            culprit = entered[-1]
            name = pools.pop(culprit)
            adaptive = nn.AdaptiveMaxPool2d(1) if isinstance(culprit, nn.MaxPool2d) else nn.AdaptiveAvgPool2d(1)
            _set_module(model, name, adaptive)
            fixed.append(name)
        finally:
            for h in hooks:
                h.remove()
    raise ModelError(f"{type(model).__name__} still fails at {img_size}x{img_size}; use a larger --img-size")


def _torchvision_student(name: str, img_size: int, pretrained: bool) -> Student:
    import torchvision

    try:
        model = torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
    except Exception as exc:  # network errors, unknown weights
        raise ModelError(f"torchvision could not build '{name}' ({exc}); check the name or drop --pretrained") from None
    drop_final_linear(model)
    remove_dropout(model)
    adapt_small_input(model, img_size)
    return Student(model, probe_dim(model, img_size), name, img_size)


@register_student("alexnet")
def alexnet(img_size: int = 224, pretrained: bool = False) -> Student:
    """torchvision AlexNet (CompRess's student); fc7 (4096-d) embedding; pools adapted below 64 px."""
    return _torchvision_student("alexnet", img_size, pretrained)


@register_student("mobilenetv3_large_100")
def mobilenetv3_large_100(img_size: int = 224, pretrained: bool = False) -> Student:
    """timm MobileNetV3-Large 1.0 (SEED's student); 1280-d embedding after the conv head."""
    return _timm_student("mobilenetv3_large_100", img_size, pretrained)


@register_student("efficientnet_b0")
def efficientnet_b0(img_size: int = 224, pretrained: bool = False) -> Student:
    """timm EfficientNet-B0 (SEED's and DisCo's student); 1280-d embedding."""
    return _timm_student("efficientnet_b0", img_size, pretrained)


@register_student("resnet18_cifar")
def resnet18_cifar(img_size: int = 32, pretrained: bool = False) -> Student:
    """ResNet-18 for 32 px images, the usual CIFAR form of the contrastive teachers (512-d embedding).

    timm's ``resnet18`` with its ImageNet stem (7x7 stride-2 convolution, then a stride-2 max pool, which leave a
    1x1 map at 32 px) replaced by a 3x3 stride-1 convolution and no pool, as in the CIFAR-10 demo of MoCo
    (facebookresearch/moco, ``colab/moco_cifar10_demo.ipynb``: torchvision's ResNet with ``conv1`` 3x3 stride 1 and
    ``maxpool`` removed) and SimCLR's CIFAR experiments. ``pretrained`` is refused: no such weights exist.
    """
    if pretrained:
        raise ModelError("resnet18_cifar has no pretrained weights; drop --pretrained (or use resnet18)")
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return Student(model, probe_dim(model, img_size), "resnet18_cifar", img_size)


def create_student(name: str, img_size: int = 224, pretrained: bool = False) -> Student:
    """Build a student by name (see the module docstring); an unknown name lists the valid ones."""
    if name in _REGISTRY:
        return _REGISTRY[name](img_size=img_size, pretrained=pretrained)
    if name.startswith("timm:"):
        return _timm_student(name[5:], img_size, pretrained)
    if name.startswith("torchvision:"):
        return _torchvision_student(name[12:], img_size, pretrained)
    if name in _timm_names():
        return _timm_student(name, img_size, pretrained)
    if name in _torchvision_names():
        return _torchvision_student(name, img_size, pretrained)
    close = difflib.get_close_matches(name, registered_students() + _timm_names() + _torchvision_names(), n=5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ModelError(
        f"unknown student '{name}': use one of {', '.join(registered_students())}, or any timm or torchvision "
        f"classifier name (timm:NAME / torchvision:NAME){hint}"
    )


def untrained_student(name: str, img_size: int) -> tuple[Student, Any]:
    """``name`` with seed-0 random weights, in eval mode, and its ImageNet preprocessing: the random-init floor of
    the results table and the stand-in for toolchain checks (``export student:NAME``, bench_suite)."""
    from distill.core.preprocess import Preprocess

    torch.manual_seed(0)
    return create_student(name, img_size=img_size).eval(), Preprocess.for_student(img_size)
