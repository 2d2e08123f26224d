"""MoCo-v2 augmentations on batched tensors (runs on the training device, CPU or GPU).

The recipe is MoCo-v2's (He et al. / Chen et al., arXiv 2003.04297): random resized crop (scale 0.2-1),
colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale with p = 0.2, Gaussian blur (sigma 0.1-2) with
p = 0.5, horizontal flip. Differences from torchvision's per-image pipeline, all deliberate:

* every operation is vectorised over the batch (one ``grid_sample`` for all crops), so that 32x32 images are
  not bound by per-image Python work;
* jitter runs in a fixed order (brightness, contrast, saturation, hue) instead of a random one, and hue is
  rotated in YIQ space (a close, cheap approximation of an HSV hue shift);
* blur is switched off below 64 px, where a sigma of 2 px erases the object (the usual CIFAR practice).

One call returns one augmented *view* at ``out_size``; :func:`resize_views` then gives the same view at
each model's own input size (teacher and student see the same crop, colours and flip).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """MoCo-v2 defaults; each field is one knob of the recipe."""

    scale: tuple[float, float] = (0.2, 1.0)  # RandomResizedCrop area range (MoCo-v2)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect range
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.5  # applied only when out_size >= blur_min_size
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_min_size: int = 64

    @classmethod
    def light(cls) -> "AugmentConfig":
        """Crop 85-100% of the image (aspect 0.9-1.1) and flip, no colour changes: close to CIFAR's pad-and-crop.

        The default below 64 px, where a 0.2-area crop is a 14-pixel patch blown up 2.3x, and where the usual
        small-image teachers (trained with crops and flips only) are not invariant to colour jitter: their
        embedding then follows the augmentation more than the image, and so does the student (docs/RESULTS.md).
        """
        return cls(scale=(0.85, 1.0), ratio=(0.9, 1.1), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)

    @classmethod
    def preset(cls, name: str, img_size: int) -> "AugmentConfig":
        """``mocov2``, ``light``, ``none``, or ``auto`` (light up to 64 px, MoCo-v2 above)."""
        if name == "auto":
            name = "light" if img_size <= 64 else "mocov2"
        presets = {"mocov2": cls, "light": cls.light, "none": cls.none}
        if name not in presets:
            from distill.core.errors import ConfigError

            raise ConfigError(f"unknown augmentation '{name}'; valid: auto, {', '.join(presets)}")
        return presets[name]()

    @classmethod
    def none(cls) -> "AugmentConfig":
        """Identity augmentation (full image, no colour change): for tests and cached-teacher centre views."""
        return cls(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


_GRAY = (0.299, 0.587, 0.114)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _uniform(lo: float, hi: float, n: int, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def crop_boxes(n: int, cfg: AugmentConfig, g: torch.Generator, device, tries: int = 10) -> torch.Tensor:
    """Random-resized-crop boxes as (n, 4) fractions (cx, cy, w, h) of the source image.

    Like torchvision, up to ``tries`` (area, aspect) draws per image; an image with no valid draw falls back to
    the whole image.
    """
    area = _uniform(cfg.scale[0], cfg.scale[1], n * tries, g, device).view(n, tries)
    log_r = _uniform(math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), n * tries, g, device).view(n, tries)
    r = torch.exp(log_r)
    w, h = torch.sqrt(area * r), torch.sqrt(area / r)
    ok = (w <= 1.0) & (h <= 1.0)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=device))
    pick = first.clamp(min=0)
    w = torch.where(first >= 0, w.gather(1, pick[:, None]).squeeze(1), torch.ones(n, device=device))
    h = torch.where(first >= 0, h.gather(1, pick[:, None]).squeeze(1), torch.ones(n, device=device))
    cx = w / 2 + torch.rand(n, generator=g, device=device) * (1 - w)
    cy = h / 2 + torch.rand(n, generator=g, device=device) * (1 - h)
    return torch.stack([cx, cy, w, h], 1)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, out_size: int) -> torch.Tensor:
    """Crop each image to its box, flip where asked, and resample to ``out_size`` (bilinear).

    images: (B, 3, H, W) float; boxes: (B, 4) (cx, cy, w, h) fractions; flip: (B,) bool -> (B, 3, S, S).
    """
    b = images.shape[0]
    cx, cy, w, h = boxes.unbind(1)
    sign = 1.0 - 2.0 * flip.to(images.dtype)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, [b, 3, out_size, out_size], align_corners=False)
    # Antialias large downscales by pre-shrinking the source: grid_sample has no antialiasing of its own.
    src = images
    shrink = min(images.shape[-1], images.shape[-2]) * float(boxes[:, 2:].min()) / out_size
    if shrink > 2.0:
        factor = int(shrink // 2) * 2
        src = F.avg_pool2d(images, factor) if factor > 1 else images
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter with probability ``jitter_p`` per image. x in [0, 1]."""
    b, dev = x.shape[0], x.device
    apply = (torch.rand(b, generator=g, device=dev) < cfg.jitter_p).view(b, 1, 1, 1)
    out = x
    if cfg.brightness > 0:
        f = _uniform(1 - cfg.brightness, 1 + cfg.brightness, b, g, dev).view(b, 1, 1, 1)
        out = (out * f).clamp(0, 1)
    if cfg.contrast > 0:
        f = _uniform(1 - cfg.contrast, 1 + cfg.contrast, b, g, dev).view(b, 1, 1, 1)
        mean = _gray(out).mean(dim=(2, 3), keepdim=True)
        out = ((out - mean) * f + mean).clamp(0, 1)
    if cfg.saturation > 0:
        f = _uniform(1 - cfg.saturation, 1 + cfg.saturation, b, g, dev).view(b, 1, 1, 1)
        gray = _gray(out)
        out = ((out - gray) * f + gray).clamp(0, 1)
    if cfg.hue > 0:
        angle = _uniform(-cfg.hue, cfg.hue, b, g, dev) * 2 * math.pi
        out = _rotate_hue(out, angle).clamp(0, 1)
    return torch.where(apply, out, x)


_RGB2YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma plane (I, Q) of YIQ by ``angle`` radians per image: a hue shift."""
    m = torch.tensor(_RGB2YIQ, dtype=x.dtype, device=x.device)
    yiq = torch.einsum("ij,bjhw->bihw", m, x)
    c, s = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma (in pixels) per image; kernel ~10% of the image side."""
    b, c, hgt, wid = x.shape
    k = max(3, int(0.1 * min(hgt, wid)) // 2 * 2 + 1)
    r = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    kern = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None].to(x.dtype) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, k)
    y = x.reshape(1, b * c, hgt, wid)
    y = F.conv2d(F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect"), kern.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), kern.view(b * c, 1, k, 1), groups=b * c)
    return y.view(b, c, hgt, wid)


class BatchAugment:
    """Callable: (B, 3, H, W) uint8 -> one augmented view, (B, 3, out_size, out_size) float in [0, 1]."""

    def __init__(self, cfg: AugmentConfig, out_size: int):
        self.cfg, self.out_size = cfg, out_size

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg, b, dev = self.cfg, images.shape[0], images.device
        x = images.float().div_(255.0)
        boxes = crop_boxes(b, cfg, g, dev)
        flip = torch.rand(b, generator=g, device=dev) < cfg.flip_p
        x = resized_crops(x, boxes, flip, self.out_size).clamp_(0, 1)
        if cfg.jitter_p > 0:
            x = color_jitter(x, cfg, g)
        if cfg.grayscale_p > 0:
            to_gray = (torch.rand(b, generator=g, device=dev) < cfg.grayscale_p).view(b, 1, 1, 1)
            x = torch.where(to_gray, _gray(x).expand_as(x), x)
        if cfg.blur_p > 0 and self.out_size >= cfg.blur_min_size:
            blur = (torch.rand(b, generator=g, device=dev) < cfg.blur_p).view(b, 1, 1, 1)
            sigma = _uniform(cfg.blur_sigma[0], cfg.blur_sigma[1], b, g, dev)
            x = torch.where(blur, gaussian_blur(x, sigma), x)
        return x


def resize_views(view: torch.Tensor, size: int) -> torch.Tensor:
    """The same view at another input size (antialiased bilinear); a no-op when the size already matches."""
    if view.shape[-1] == size and view.shape[-2] == size:
        return view
    return F.interpolate(view, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
