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


# The deploy side: what runs an exported artifact on a device with the base install (no torch). Everything in these
# packages and modules must import without the training stack; tests/runtime runs their commands without it.
DEPLOY_SIDE = ("distill/core", "export/backends", "export/__init__.py", "export/errors.py", "export/formats.py",
               "export/metadata.py", "export/parity.py", "export/tolerances.py", "export/batch.py",
               "export/reference.py", "bench", "retrieval_demo", "distill/commands/evaluate.py")
NOT_DEPLOY = {"bench/flops.py": "counts the PyTorch student's FLOPs; imported only when a student.pt is benchmarked",
              "export/backends/torch_backend.py": "runs a student.pt; load_backend imports it only for one",
              "export/backends/timm_backend.py": "runs a --format timm artifact through timm (the train extra)",
              "export/backends/executorch_backend.py": "ExecuTorch's Python runtime imports torch"}
TRAINING_STACK = ("torch", "torchvision", "timm", "onnx", "scipy")


def deploy_modules() -> list[str]:
    files = []
    for entry in DEPLOY_SIDE:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    rel = [f.relative_to(ROOT).as_posix() for f in files]
    return [r[:-3].replace("/", ".").removesuffix(".__init__") for r in rel if r not in NOT_DEPLOY and
            not r.endswith("__main__.py")]


def test_the_deploy_side_imports_without_the_training_stack():
    """Every deploy-side module imports with torch, torchvision, timm, onnx and scipy made unimportable (as in the
    base install), and none of them is imported as a side effect."""
    modules = deploy_modules()
    assert "retrieval_demo.server" in modules and "export.backends.onnx_backend" in modules
    code = (f"import sys\nfor m in {TRAINING_STACK!r}: sys.modules[m] = None\n"
            f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {TRAINING_STACK!r} if sys.modules.get(m) is not None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_packages_depend_one_way():
    """distill <- export <- bench, retrieval_demo: no package imports one downstream of it or beside it."""
    forbidden = {"distill": ("export", "bench", "retrieval_demo"), "export": ("bench", "retrieval_demo"),
                 "bench": ("retrieval_demo",), "retrieval_demo": ("bench",)}
    for pkg, banned in forbidden.items():
        for path in (ROOT / pkg).rglob("*.py"):
            bad = {m for m in _imports(path) if m.split(".")[0] in banned}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


PACKAGES = ("distill", "export", "bench", "retrieval_demo")
MAX_LINES = 400


def _module_graph() -> dict[str, set[str]]:
    """project module -> the project modules it imports, at any depth of the file (a lazy import inside a function
    is an edge too: it still ties the two modules together). ``from pkg import name`` counts as an edge to
    ``pkg.name`` when that is a module."""
    modules = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges.add(node.module)
                edges.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
        # a package's __init__ re-exports (lazily) its own modules: that is its API, not a dependency back
        graph[name] = {m for m in edges if m in modules and m != name and not name.startswith(m + ".")
                       and not (path.name == "__init__.py" and m.startswith(name + "."))}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_project_modules():
    graph = _module_graph()
    assert len(graph) > 100 and "export.qdq" in graph["export.onnx_export"]  # the graph is real
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]  # and the finder finds


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for pkg in (*PACKAGES, "tools") for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_package_code_stays_within_120_columns():
    """pyproject's line-length, for the installed packages (tests and tools keep some long literal tables)."""
    long = [f"{p.relative_to(ROOT)}:{i}" for pkg in (*PACKAGES, "edgedistill") for p in (ROOT / pkg).rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert not long, f"lines over 120 columns: {long[:10]}"
