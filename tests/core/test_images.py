"""Image folders: layouts, subsets, decoding, and unreadable files."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from distill.batches import BatchStream, MemoryImages, epoch_order
from distill.core.errors import DataError
from distill.core.images import balanced_subset, load_rgb, scan_folder
from tests.conftest import make_image


def test_class_layout_gives_sorted_paths_and_labels(synthetic_folder):
    folder = scan_folder(synthetic_folder)
    assert folder.classes == ("blue", "red")
    assert len(folder) == 12
    assert list(folder.paths) == sorted(folder.paths)
    assert folder.labels.tolist() == [0] * 6 + [1] * 6
    assert all(folder.absolute(i).is_file() for i in range(len(folder)))


def test_flat_layout_has_no_labels(tmp_path):
    for i in range(3):
        make_image(tmp_path / f"{i}.png", seed=i)
    make_image(tmp_path / "sub" / "x.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    folder = scan_folder(tmp_path)
    assert folder.labels is None and not folder.has_labels
    assert sorted(folder.paths) == ["0.png", "1.png", "2.png", "sub/x.jpg"]


def test_missing_and_empty_folders_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no images found") as exc:
        scan_folder(tmp_path / "empty")
    assert "\n" not in str(exc.value)


def test_limit_is_class_balanced_and_takes_the_first_images(synthetic_folder):
    folder = scan_folder(synthetic_folder, limit=4)
    assert folder.labels.tolist() == [0, 0, 1, 1]
    assert [p.split("/")[1] for p in folder.paths] == ["img0.png", "img1.jpg", "img0.png", "img1.jpg"]


def test_balanced_subset_round_robin_with_uneven_classes():
    labels = np.array([0] * 5 + [1] * 1 + [2] * 5)
    chosen = balanced_subset(labels, len(labels), 7)
    counts = np.bincount(labels[chosen], minlength=3)
    assert counts.tolist() == [3, 1, 3]
    unlabeled = balanced_subset(None, 100, 5)
    assert unlabeled.tolist() == [0, 25, 50, 74, 99]


def test_exif_orientation_and_modes_become_rgb(tmp_path):
    # A 40x20 image stored with EXIF orientation 6 (rotate 90 clockwise) must come out 20x40.
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (20, 40)
    make_image(tmp_path / "gray.png", mode="L")
    assert load_rgb(tmp_path / "gray.png").mode == "RGB"
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red -> white background
    rgba.save(tmp_path / "alpha.png")
    out = load_rgb(tmp_path / "alpha.png")
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)


def _with_corrupt(folder_root):
    bad = folder_root / "red" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return bad


def test_corrupt_image_is_skipped_in_memory(synthetic_folder):
    _with_corrupt(synthetic_folder)
    folder = scan_folder(synthetic_folder)
    with pytest.warns(UserWarning, match="broken.jpg"):
        mem = MemoryImages(folder, 16)
    assert len(mem.skipped) == 1 and folder.paths[mem.skipped[0]].endswith("broken.jpg")
    stream = BatchStream(folder, 16, batch_size=4, memory=mem, drop_last=False, shuffle=False)
    seen = torch.cat([b.indices for b in stream.epoch(0)])
    assert len(seen) == len(folder) - 1 and mem.skipped[0] not in seen.tolist()


def test_corrupt_image_is_skipped_when_streaming(synthetic_folder):
    _with_corrupt(synthetic_folder)
    folder = scan_folder(synthetic_folder)
    stream = BatchStream(folder, 16, batch_size=5, drop_last=False, shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(stream.epoch(0))
    assert sum(len(b.indices) for b in batches) == len(folder) - 1
    assert len(stream.skipped) == 1
    assert any("broken.jpg" in str(w.message) for w in caught)
    assert all(b.images.dtype == torch.uint8 and b.images.shape[1:] == (3, 16, 16) for b in batches)


def test_epoch_order_is_deterministic_and_sharded():
    a = epoch_order(10, shuffle=True, seed=1, epoch=3)
    assert a.tolist() == epoch_order(10, shuffle=True, seed=1, epoch=3).tolist()
    assert a.tolist() != epoch_order(10, shuffle=True, seed=1, epoch=4).tolist()
    shards = [epoch_order(10, shuffle=True, seed=1, epoch=3, rank=r, world_size=3) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to equal length
    assert set(np.concatenate(shards).tolist()) == set(range(10))
