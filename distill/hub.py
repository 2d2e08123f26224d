"""Hub teachers: the self-supervised models users bring, by name, through timm, offline.

A hub teacher is named ``timm:NAME[.TAG]``, ``hf-hub:timm/NAME.TAG`` (the Hugging Face id of a timm model), or a
short alias of :data:`ALIASES` (``dinov2/vits14``, ``dinov3/vits16``, ``dino/vitb16``, ...). Nothing is downloaded
here: the architecture comes from timm's registry and the weights from ``--teacher-weights FILE`` (the
``model.safetensors`` or ``pytorch_model.bin`` the hub serves, or an original ``.pth``: timm's own checkpoint filter
maps the original DINOv2 / DINOv3 layouts and resamples position embeddings to the input size), or, on a machine
with network, from the hub.

Input size: timm builds DINOv2 at 518 px; the teacher is built at ``--teacher-input-size`` or 224 (DINOv2's and
DINOv3's own kNN and linear evaluations resize to 256 and crop 224), with ``img_size`` passed to timm so that its
position embeddings fit.

Embedding (``--teacher-embedding``, default ``auto``: ``cls`` for a ViT, ``head`` for a convolutional network) of a
ViT, from its final-norm tokens (``forward_features``):

* ``cls``: the class token, what DINO's and DINOv2's kNN evaluation uses (dinov2/eval/knn.py wraps the
  model, whose forward returns ``x_norm_clstoken``, in ``ModelWithNormalize``);
* ``mean``: the mean of the patch tokens (class and register tokens excluded);
* ``cls+mean``: both concatenated, DINOv2's linear evaluation with ``avgpool`` (dinov2/eval/linear.py);
* ``head``: what timm's model returns with ``num_classes=0`` (its own ``global_pool`` and ``fc_norm``).

A convolutional teacher (DINOv3's ConvNeXts) has no tokens: only ``head``.

Licence: every timm weight carries ``pretrained_cfg["license"]``; it is recorded with the teacher and travels into
``student.pt`` and every artifact (distill.checkpoint, export.metadata). Licences in :data:`RESTRICTED_LICENSES`
restrict what the student may be used for, and are warned about.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from distill.core.errors import ModelError, first_line
from distill.core.preprocess import Preprocess

# alias -> timm name with its pretrained tag: the one list of short names (README, "Teachers")
ALIASES: dict[str, str] = {
    "dinov2/vits14": "vit_small_patch14_dinov2.lvd142m",
    "dinov2/vitb14": "vit_base_patch14_dinov2.lvd142m",
    "dinov2/vitl14": "vit_large_patch14_dinov2.lvd142m",
    "dinov2/vitg14": "vit_giant_patch14_dinov2.lvd142m",
    "dinov2/vits14-reg": "vit_small_patch14_reg4_dinov2.lvd142m",
    "dinov2/vitb14-reg": "vit_base_patch14_reg4_dinov2.lvd142m",
    "dinov3/vits16": "vit_small_patch16_dinov3.lvd1689m",
    "dinov3/vits16plus": "vit_small_plus_patch16_dinov3.lvd1689m",
    "dinov3/vitb16": "vit_base_patch16_dinov3.lvd1689m",
    "dinov3/vitl16": "vit_large_patch16_dinov3.lvd1689m",
    "dinov3/convnext-tiny": "convnext_tiny.dinov3_lvd1689m",
    "dinov3/convnext-small": "convnext_small.dinov3_lvd1689m",
    "dino/vits16": "vit_small_patch16_224.dino",
    "dino/vits8": "vit_small_patch8_224.dino",
    "dino/vitb16": "vit_base_patch16_224.dino",
    "dino/vitb8": "vit_base_patch8_224.dino",
}
EMBEDDINGS = ("auto", "cls", "mean", "cls+mean", "head")
DEFAULT_INPUT_SIZE = 224  # DINOv2 / DINOv3 evaluate at 256 -> crop 224, whatever size they were trained at
RESTRICTED_LICENSES = {
    "dinov3-license": "the DINOv3 License (use restrictions; read it before shipping a student)",
    "fair-noncommercial-research-license": "the FAIR Noncommercial Research License (no commercial use)",
    "cc-by-nc-4.0": "CC BY-NC 4.0 (no commercial use)",
    "cc-by-nc-sa-4.0": "CC BY-NC-SA 4.0 (no commercial use)",
}


def hub_name(spec: str) -> str | None:
    """The timm name (with tag) a teacher spec names, or None when it is not a hub spec (a file, torchvision:...)."""
    if spec in ALIASES:
        return ALIASES[spec]
    if spec.startswith("timm:"):
        return spec[len("timm:"):]
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:"):]
        org, _, name = repo.partition("/")
        if org != "timm" or not name:
            raise ModelError(f"'{spec}': only timm's own hub models (hf-hub:timm/NAME) are known offline; for another "
                             "repository pass its weights with --teacher-arch timm:ARCH --teacher-weights FILE")
        return name
    if "/" in spec and spec.split("/")[0] in {a.split("/")[0] for a in ALIASES} and not Path(spec).exists():
        raise ModelError(f"unknown teacher alias '{spec}'; known aliases: {', '.join(ALIASES)}")
    return None


class TokenEmbedding(nn.Module):
    """A timm ViT's embedding of choice (see the module docstring) from its final-norm tokens."""

    def __init__(self, model: nn.Module, embedding: str):
        super().__init__()
        self.model, self.embedding = model, embedding
        self.prefix = int(getattr(model, "num_prefix_tokens", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(x)
        if self.embedding == "cls":
            return tokens[:, 0]
        mean = tokens[:, self.prefix:].mean(1)
        return mean if self.embedding == "mean" else torch.cat([tokens[:, 0], mean], dim=1)


def create_hub_teacher(name: str, *, input_size: int | None, weights: Path | None, embedding: str = "auto",
                       load_weights=None) -> tuple[nn.Module, Preprocess, str | None, str]:
    """(module, preprocessing, licence, resolved embedding) of a timm teacher built at ``input_size`` (default: its
    own size, at most 224), with ``weights`` from a local file, else (where the machine can fetch them) the hub's.
    A file that timm's own loader refuses (a self-supervised checkpoint's key layout: ``module.``, ``encoder_q.``,
    heads) goes to ``load_weights(model)`` (distill.teachers: the layouts mapped, mismatches listed)."""
    import timm

    if embedding not in EMBEDDINGS:
        raise ModelError(f"unknown --teacher-embedding '{embedding}'; valid: {', '.join(EMBEDDINGS)}")
    known = timm.models.get_pretrained_cfg(name.split(".")[0] if "." not in name else name)
    known = known.to_dict() if known is not None else {}
    default = int((known.get("input_size") or (3, DEFAULT_INPUT_SIZE))[-1])
    size = input_size or min(default, DEFAULT_INPUT_SIZE)
    crop = float(known.get("crop_pct") or 0.875) if size == default else 0.875
    kwargs: dict = {"num_classes": 0}
    if weights is not None:
        if not weights.is_file():
            raise ModelError(f"teacher weights '{weights}' do not exist")
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    def build(pretrained: bool) -> nn.Module:
        extra = kwargs if pretrained else {"num_classes": 0}
        try:
            return timm.create_model(name, pretrained=pretrained, img_size=size, **extra)
        except TypeError:  # a model without an img_size argument (a ConvNeXt, a ResNet): any input size
            return timm.create_model(name, pretrained=pretrained, **extra)

    try:
        model = build(True)
    except Exception as exc:  # timm's and the hub's own exceptions, and a weight file of another layout
        text = first_line(exc)
        if weights is not None and load_weights is not None:
            try:
                model = build(False)
            except Exception:
                raise ModelError(f"timm could not build teacher '{name}' ({text[:200]}); check the name") from None
            load_weights(model)
        else:
            how = ("check that the file holds this architecture's weights" if weights is not None else
                   "pass --teacher-weights FILE (the model.safetensors the hub serves; no network here?)")
            raise ModelError(f"timm could not build teacher '{name}' ({text[:200]}); {how}") from None
    tokens = hasattr(model, "forward_features") and hasattr(model, "num_prefix_tokens")
    if embedding == "auto":
        embedding = "cls" if tokens else "head"
    if embedding != "head" and not tokens:
        raise ModelError(f"--teacher-embedding {embedding} needs a ViT's tokens; '{name}' has none: use head")
    cfg = timm.data.resolve_data_config({}, model=model)
    pre = Preprocess(input_size=size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=crop)
    licence = (getattr(model, "pretrained_cfg", None) or {}).get("license")
    warn_licence(name, licence)
    module = TokenEmbedding(model, embedding) if embedding != "head" else model
    return module.eval(), pre, licence, embedding


def warn_licence(name: str, licence: str | None) -> None:
    if licence in RESTRICTED_LICENSES:
        warnings.warn(f"teacher '{name}' is under {RESTRICTED_LICENSES[licence]}; the student and every artifact "
                      "exported from it record it", stacklevel=3)
