"""Structure that users rely on: a fast, torch-free `--help`, and the layers depending one way."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_help_leaves_torch_onnx_and_openvino_unimported():
    code = ("import sys; from distill.core.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "distill", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert helped.returncode == 0 and "export" in helped.stdout and "retrieve" in helped.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_core_imports_no_training_code_and_downstream_packages_import_no_training_internals():
    training = ("distill.trainer", "distill.config", "distill.losses", "distill.train_run", "distill.momentum",
                "distill.teacher_cache", "distill.augment", "distill.heads")
    for path in (ROOT / "distill" / "core").glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith("distill.") and not m.startswith("distill.core")}
        assert not bad, f"{path.name} imports {bad}"
    for pkg in ("export", "bench", "retrieval_demo"):
        for path in (ROOT / pkg).rglob("*.py"):
            bad = {m for m in _imports(path) if m.startswith(training)}
            assert not bad, f"{path.relative_to(ROOT)} imports training internals {bad}"
            assert not any(m == "tools" or m.startswith("tools.") for m in _imports(path)), path
