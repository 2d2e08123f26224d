"""Per-model preprocessing: input size, mean, std, and how an image becomes a network input.

Every model in the project (teacher, student, exported artifact) carries one :class:`Preprocess`; it travels in
checkpoints, sidecar JSON files and ONNX metadata so that an artifact can be used without its training config.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distill.core.errors import ModelError

if TYPE_CHECKING:  # annotations only: the deploy side imports this module without torch
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_INPUT = 64  # up to this size a student sees the whole image (crop_pct 1.0)
ONNX_METADATA_KEY = "edgedistill"  # the metadata_props key under which `edgedistill export` describes an ONNX file


@dataclass(frozen=True)
class Preprocess:
    """How to turn an RGB image into a network input of shape (3, input_size, input_size).

    The image is scaled to [0, 1], its shorter side resized to ``input_size / crop_pct`` and centre-cropped,
    then normalised with ``mean`` and ``std``. Layout is NCHW float32.
    """

    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 1.0
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.input_size <= 0:
            raise ModelError(f"input size must be positive, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ModelError(f"mean and std need 3 values (RGB), got mean={self.mean} std={self.std}")
        if any(s <= 0 for s in self.std):
            raise ModelError(f"std values must be positive, got {self.std}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ModelError(f"crop_pct must be in (0, 1], got {self.crop_pct}")

    @classmethod
    def for_student(cls, input_size: int, mean: tuple[float, float, float] = IMAGENET_MEAN,
                    std: tuple[float, float, float] = IMAGENET_STD) -> "Preprocess":
        """A student's preprocessing at ``input_size``: the whole image up to 64 px (a CIFAR-sized image has no
        border to spare), timm's 0.875 centre crop above."""
        return cls(input_size=input_size, mean=tuple(mean), std=tuple(std),
                   crop_pct=1.0 if input_size <= SMALL_INPUT else 0.875)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        size = d.get("input_size", 224)
        if isinstance(size, (list, tuple)):  # the test bed's sidecars give [3, H, W]
            if len(size) != 3 or size[1] != size[2]:
                raise ModelError(f"only square RGB inputs are supported, got input_size={size}")
            size = size[-1]
        return cls(
            input_size=int(size),
            mean=tuple(float(v) for v in d.get("mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in d.get("std", IMAGENET_STD)),
            crop_pct=float(d.get("crop_pct", 1.0)),
        )

    def override(
        self, input_size: int | None = None, mean=None, std=None, crop_pct: float | None = None
    ) -> "Preprocess":
        """A copy with the given fields replaced (``None`` keeps the current value)."""
        changes: dict[str, Any] = {}
        if input_size is not None:
            changes["input_size"] = int(input_size)
        if mean is not None:
            changes["mean"] = tuple(float(v) for v in mean)
        if std is not None:
            changes["std"] = tuple(float(v) for v in std)
        if crop_pct is not None:
            changes["crop_pct"] = float(crop_pct)
        return replace(self, **changes)

    def normalize(self, images: "torch.Tensor") -> "torch.Tensor":
        """(B, 3, H, W) float tensor in [0, 1] -> normalised float32 of the same shape (training side: torch is
        imported here, not by the module, which the deploy side uses without torch)."""
        import torch

        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std

    def from_uint8(self, images: "torch.Tensor") -> "torch.Tensor":
        """(B, 3, input_size, input_size) uint8 -> normalised float32 network input."""
        return self.normalize(images.float().div_(255.0))

    def numpy_from_uint8(self, images: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) uint8 array -> normalised float32 array (for runtimes without torch)."""
        x = images.astype(np.float32) / 255.0
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        return (x - mean) / std


def onnx_metadata(model: Any) -> dict[str, Any] | None:
    """The metadata `edgedistill export` stored in a loaded ONNX model (``metadata_props`` key
    ``ONNX_METADATA_KEY``), or ``None`` for an ONNX file from elsewhere; invalid JSON raises ``ValueError``."""
    for prop in model.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            return json.loads(prop.value)
    return None


def sidecar_path(model_path: str | Path) -> Path:
    """The sidecar JSON of a model file: its name up to the first dot, plus ``.json``.

    ``cifar_resnet56.onnx`` and ``cifar_resnet56.torchscript.pt`` both use ``cifar_resnet56.json``.
    """
    p = Path(model_path)
    return p.with_name(p.name.split(".", 1)[0] + ".json")


def read_sidecar(model_path: str | Path) -> dict[str, Any] | None:
    """The sidecar JSON next to ``model_path`` as a dict, or ``None`` when there is none."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"sidecar '{path}' is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict):
        raise ModelError(f"sidecar '{path}' must hold a JSON object with input_size, mean and std")
    return data


@dataclass
class PreprocessOverrides:
    """Command-line overrides of a model's preprocessing (``None`` keeps the model's own value)."""

    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None

    def apply(self, pre: Preprocess) -> Preprocess:
        return pre.override(self.input_size, self.mean, self.std, self.crop_pct)
