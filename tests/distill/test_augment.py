"""Batched MoCo-v2 augmentation."""
import torch

from distill.augment import AugmentConfig, BatchAugment, crop_boxes, gaussian_blur, resize_views


def _images(b=8, s=32):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=g)


def test_identity_config_returns_the_image():
    x = _images()
    out = BatchAugment(AugmentConfig.none(), 32)(x, torch.Generator().manual_seed(1))
    assert torch.allclose(out, x.float() / 255, atol=1e-5)


def test_views_are_seeded_in_range_and_differ_between_draws():
    x = _images()
    aug = BatchAugment(AugmentConfig(), 24)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert a.shape == (8, 3, 24, 24)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_crop_boxes_stay_inside_the_image_and_respect_the_scale():
    cfg = AugmentConfig(scale=(0.2, 1.0))
    boxes = crop_boxes(2000, cfg, torch.Generator().manual_seed(0), "cpu")
    cx, cy, w, h = boxes.unbind(1)
    assert ((cx - w / 2) >= -1e-6).all() and ((cx + w / 2) <= 1 + 1e-6).all()
    assert ((cy - h / 2) >= -1e-6).all() and ((cy + h / 2) <= 1 + 1e-6).all()
    area = w * h
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 1 + 1e-5


def test_flip_mirrors_the_image():
    x = _images(2, 16)
    cfg = AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)
    out = BatchAugment(cfg, 16)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.float().flip(-1) / 255, atol=1e-5)


def test_grayscale_makes_channels_equal():
    cfg = AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0, jitter_p=0, grayscale_p=1.0, blur_p=0)
    out = BatchAugment(cfg, 32)(_images(), torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_blur_keeps_the_mean_and_smooths():
    x = torch.rand(2, 3, 64, 64)
    y = gaussian_blur(x, torch.tensor([2.0, 2.0]))
    assert torch.allclose(x.mean(), y.mean(), atol=1e-2)
    assert y.std() < x.std()


def test_resize_views_keeps_the_view_at_another_size():
    v = torch.rand(2, 3, 32, 32)
    assert resize_views(v, 32) is v
    assert resize_views(v, 64).shape == (2, 3, 64, 64)
