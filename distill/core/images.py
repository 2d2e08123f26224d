"""Image folders: scanning, class-balanced subsets, and robust image decoding.

Two layouts are understood:

* ``root/<class>/<image>``: every image lies in a sub-folder, whose name is its label (sorted, like
  torchvision's ``ImageFolder``);
* a flat folder: images directly in ``root`` (sub-folders are scanned too); no labels.

Ordering is deterministic (sorted paths), so a run, an evaluation and a subset are reproducible.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from distill.core.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# What decoding a corrupt, truncated or absurdly large file raises (load_rgb turns Pillow's
# decompression-bomb warning into an error).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageFolder:
    """A scanned image folder.

    ``paths`` are relative to ``root``; ``labels`` is an int64 array (one per path) or ``None`` for a flat folder.
    """

    root: Path
    paths: tuple[str, ...]
    labels: np.ndarray | None
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def absolute(self, i: int) -> Path:
        return self.root / self.paths[i]

    def fingerprint(self) -> str:
        """SHA-256 over the relative paths, their sizes and labels: changes when the data changes."""
        h = hashlib.sha256()
        for i, rel in enumerate(self.paths):
            try:
                size = (self.root / rel).stat().st_size
            except OSError:
                size = -1
            label = -1 if self.labels is None else int(self.labels[i])
            h.update(os.fsencode(rel) + f"\0{size}\0{label}\n".encode())  # fsencode: any file name's bytes
        return h.hexdigest()

    def subset(self, indices: np.ndarray) -> "ImageFolder":
        indices = np.asarray(indices, dtype=np.int64)
        labels = None if self.labels is None else self.labels[indices]
        return ImageFolder(self.root, tuple(self.paths[i] for i in indices), labels, self.classes)


def display_path(rel: str) -> str:
    """A path as text for people and JSON: a file name that is not valid UTF-8 (kept by Python as lone surrogates,
    which no UTF-8 writer accepts) shows its undecodable bytes as U+FFFD."""
    return os.fsencode(rel).decode("utf-8", "replace")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _walk_images(folder: Path, special: list[str]) -> list[str]:
    """All image files below ``folder``, as sorted paths relative to it. Only regular files (symlinks to them
    followed): a named pipe, socket or device with an image's name is recorded (absolute) in ``special`` and left
    out, since opening a pipe waits for a writer forever."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder)
        for name in filenames:
            if _is_image(name):
                if os.path.isfile(os.path.join(dirpath, name)):
                    found.append(name if rel_dir == "." else os.path.join(rel_dir, name))
                else:
                    special.append(os.path.join(dirpath, name))
    return sorted(found)


def scan_folder(root: str | os.PathLike, limit: int | None = None) -> ImageFolder:
    """Scan ``root`` into an :class:`ImageFolder`; ``limit`` keeps a class-balanced subset of that many images.

    Raises :class:`DataError` for a missing folder or one without images.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"image folder '{root}' does not exist; pass an existing folder of images")
    if not root.is_dir():
        raise DataError(f"'{root}' is not a folder; pass a folder of images (root/<class>/<image> or a flat folder)")
    if limit is not None and limit <= 0:
        raise DataError(f"--limit must be a positive number of images, got {limit}")

    entries = sorted(os.scandir(root), key=lambda e: e.name)
    loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]

    paths: list[str] = []
    labels: list[int] | None = None
    classes: list[str] = []
    special: list[str] = []
    if not loose and class_dirs:
        labels = []
        for entry in class_dirs:
            images = _walk_images(Path(entry.path), special)
            if not images:
                continue
            classes.append(entry.name)
            paths.extend(os.path.join(entry.name, p) for p in images)
            labels.extend([len(classes) - 1] * len(images))
    else:
        paths = _walk_images(root, special)
    if special:
        warnings.warn(f"skipped {len(special)} entries under '{root}' that are not regular files (named pipes, "
                      f"sockets or devices): '{special[0]}'{' and others' if len(special) > 1 else ''}", stacklevel=2)

    if not paths:
        raise DataError(
            f"no images found in '{root}' (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "point the flag at a folder holding images, or root/<class>/<image>"
        )
    label_arr = None if labels is None else np.asarray(labels, dtype=np.int64)
    folder = ImageFolder(root, tuple(paths), label_arr, tuple(classes))
    if limit is not None and limit < len(folder):
        folder = folder.subset(balanced_subset(folder.labels, len(folder), limit))
    return folder


def balanced_subset(labels: np.ndarray | None, n: int, limit: int) -> np.ndarray:
    """Indices of a deterministic subset of ``limit`` items.

    With labels, classes take turns (round robin, each class in its sorted order), so ``limit = 500 * C`` is
    "the first 500 images of each class". Without labels, evenly spaced items are kept.
    """
    if labels is None:
        return np.unique(np.linspace(0, n - 1, num=limit).round().astype(np.int64))
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        took = False
        for idx in per_class:
            if depth < len(idx) and len(chosen) < limit:
                chosen.append(int(idx[depth]))
                took = True
        if not took:
            break
        depth += 1
    return np.sort(np.asarray(chosen, dtype=np.int64))


def native_size(folder: ImageFolder, samples: int = 16) -> int | None:
    """The median shorter side of up to ``samples`` images spread over the folder (read from their headers only),
    or None when none can be read: the data's own resolution."""
    sizes = []
    for i in np.unique(np.linspace(0, len(folder) - 1, num=min(samples, len(folder))).round().astype(int)):
        try:
            with Image.open(folder.absolute(int(i))) as im:
                sizes.append(min(im.size))
        except UNREADABLE:
            continue
    return int(np.median(sizes)) if sizes else None


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image as RGB: EXIF orientation applied, grayscale expanded, alpha composited on white.

    Raises ``OSError``/``ValueError`` (from Pillow) for a corrupt or unreadable file; callers decide whether to
    skip it or to report it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            return im.convert("RGB")


def resize_center_crop(img: Image.Image, size: int, crop_pct: float = 1.0) -> Image.Image:
    """Resize the shorter side to ``size / crop_pct`` (bilinear, antialiased) and centre-crop ``size x size``."""
    scale_size = int(round(size / crop_pct))
    w, h = img.size
    if w <= h:
        new_w, new_h = scale_size, max(scale_size, int(round(h * scale_size / w)))
    else:
        new_w, new_h = max(scale_size, int(round(w * scale_size / h))), scale_size
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BILINEAR, reducing_gap=None)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))
