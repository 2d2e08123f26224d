"""Shared fixtures and the skip rules behind the markers declared in pyproject.toml.

A test that needs something absent (the test bed, a GPU, TensorRT, OpenVINO, Chromium) is skipped with the
reason, never failed. The test bed is found at ../shared/testbed or wherever EDGEDISTILL_TESTBED points; its
archives are unpacked once into .cache/data (or EDGEDISTILL_DATA).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TESTBED = Path(os.environ.get("EDGEDISTILL_TESTBED", ROOT.parent / "shared" / "testbed"))
DATA_CACHE = Path(os.environ.get("EDGEDISTILL_DATA", ROOT / ".cache" / "data"))

os.environ.setdefault("EDGEDISTILL_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads weights at test time


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401

        return _has_cuda()
    except Exception:
        return False


def _has_openvino() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _has_browser() -> bool:
    return bool(shutil.which("chromium") or shutil.which("chromium-browser")) and bool(shutil.which("chromedriver"))


RUNTIME_VENV = Path(os.environ.get("EDGEDISTILL_RUNTIME_VENV", ROOT / ".venv-runtime"))


SKIPS = {
    "runtime": (lambda: (RUNTIME_VENV / "bin" / "edgedistill").is_file(),
                f"no runtime-only environment at {RUNTIME_VENV} (make runtime-env, or set EDGEDISTILL_RUNTIME_VENV)"),
    "testbed": (lambda: (TESTBED / "cifar10.tar.gz").is_file(), f"test bed not found at {TESTBED} (set EDGEDISTILL_TESTBED)"),
    "gpu": (_has_cuda, "no CUDA GPU on this machine"),
    "tensorrt": (_has_tensorrt, "TensorRT is not installed or no CUDA GPU (pip install 'edgedistill[tensorrt]')"),
    "openvino": (_has_openvino, "openvino is not installed (pip install 'edgedistill[openvino]')"),
    "browser": (_has_browser, "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"),
}


def pytest_collection_modifyitems(config, items):
    cache: dict[str, bool] = {}
    for item in items:
        for name, (check, reason) in SKIPS.items():
            if item.get_closest_marker(name):
                if name not in cache:
                    cache[name] = check()
                if not cache[name]:
                    item.add_marker(pytest.mark.skip(reason=reason))


def unpack(archive: str, folder: str) -> Path:
    target = DATA_CACHE / folder
    if not target.is_dir():
        DATA_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = DATA_CACHE / f".{folder}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with tarfile.open(TESTBED / archive) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / folder).rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@pytest.fixture(scope="session")
def testbed() -> Path:
    if not (TESTBED / "cifar10.tar.gz").is_file():
        pytest.skip(f"test bed not found at {TESTBED}")
    return TESTBED


@pytest.fixture(scope="session")
def cifar(testbed) -> Path:
    """The unpacked CIFAR-10 test bed: cifar/train/<class>/*.jpg and cifar/test/<class>/*.jpg."""
    return unpack("cifar10.tar.gz", "cifar10")


@pytest.fixture(scope="session")
def tiny_imagenet(testbed) -> Path:
    return unpack("tiny-imagenet-subset.tar.gz", "tiny-imagenet")


@pytest.fixture(scope="session")
def resnet56_onnx(testbed) -> Path:
    return testbed / "teachers" / "cifar_resnet56.onnx"


@pytest.fixture(scope="session")
def cifar_small(cifar, tmp_path_factory) -> Path:
    """A 10-class folder with the first 8 training images per class (real images, fast to use)."""
    root = tmp_path_factory.mktemp("cifar_small")
    for split, per_class in (("train", 8), ("test", 4)):
        for cls in sorted(p.name for p in (cifar / split).iterdir()):
            (root / split / cls).mkdir(parents=True)
            for src in sorted((cifar / split / cls).iterdir())[:per_class]:
                shutil.copy(src, root / split / cls / src.name)
    return root


def make_image(path: Path, size=(40, 30), color=(200, 30, 30), mode="RGB", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arr = np.clip(np.asarray(color)[None, None] + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


COLORS = {"red": (220, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 220)}


def colour_gallery(root: Path, database: str = "gallery", size: int = 40) -> Path:
    """root/<database>/<colour>/<i>.png (8 per class) and root/queries/<colour>/q<i>.jpg (2 per class):
    coloured noise, three classes, the same seeds wherever it is used."""
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(8):
            make_image(root / database / name / f"{i}.png", size=(size, size), color=color, seed=100 * c + i)
        for i in range(2):
            make_image(root / "queries" / name / f"q{i}.jpg", size=(size, size), color=color,
                       seed=1000 + 100 * c + i)
    return root


@pytest.fixture
def synthetic_folder(tmp_path) -> Path:
    """root/<class>/<image>: two classes of coloured noise images in several formats."""
    root = tmp_path / "images"
    colors = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    exts = (".png", ".jpg", ".webp", ".bmp")
    for c, (name, color) in enumerate(colors.items()):
        for i in range(6):
            make_image(root / name / f"img{i}{exts[i % len(exts)]}", color=color, seed=10 * c + i)
    return root


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m distill ...`` (or another package) in a subprocess."""
    full_env = {**os.environ, "EDGEDISTILL_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          env=full_env, timeout=timeout)


def tiny_teacher():
    """A 32-d teacher (one strided conv, global pool, a linear layer) with seed-0 weights, in eval mode: what the
    tests that need a real teacher file export to TorchScript or ONNX."""
    import torch

    class TinyTeacher(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(16, 32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    torch.manual_seed(0)
    return TinyTeacher().eval()


def student_run(root: Path, name: str = "mobilenetv3_small_050", size: int = 32, seed: int = 1):
    """root/gallery (coloured noise) and root/student.pt: ``name`` at ``size`` px with seed-``seed`` weights;
    returns the student (eval mode) for comparisons."""
    import torch

    from distill.checkpoint import save_student
    from distill.core.preprocess import Preprocess
    from distill.students import create_student

    colour_gallery(root, size=size)
    torch.manual_seed(seed)
    student = create_student(name, img_size=size).eval()
    save_student(root / "student.pt", student, Preprocess.for_student(size), {})
    return student
