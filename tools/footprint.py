"""What a device pays to run an exported student: install size, cold start and peak memory (docs/DEPLOY.md).

For each environment, the same three commands on the same export folder and index, each in a fresh process:

* ``retrieve search`` of one image: process start to the printed neighbours (load the artifact and the index,
  decode and embed the image, search), and the peak RSS of the process;
* ``retrieve serve``: process start to the first answer of ``GET /api/random`` (an image embedded and searched),
  and the server's peak RSS (``VmHWM``) after that answer;
* ``bench ARTIFACT``: the whole benchmark of the ONNX fp32 artifact at batch 1 (with its on-target parity gate
  where the code has one), wall time and the peak RSS of its largest process (driver or worker).

Environments: ``--env NAME=VENV[@SRC]`` (``SRC``: a source tree to run instead of this one, e.g. a worktree of
the commit before the split, whose deploy side imported torch). Sizes: ``--size NAME=VENV``; ``--fresh`` also builds
the base install and base + openvino in temporary venvs and measures them.

  python -m tools.footprint --export runs/demo/student/export --images .cache/data/cifar10/test \\
      --env full=.venv --env runtime=.venv-runtime --fresh --json runs/footprint.json
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from distill.core.atomic import atomic_write_json
from distill.core.cli import script, tool_parser

ROOT = Path(__file__).resolve().parents[1]


def du_mb(path: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return round(total / 1e6, 1)


def _command(venv: Path, src: Path | None) -> list[str]:
    return [str(venv / "bin" / "python"), "-m", "distill"] if src else [str(venv / "bin" / "edgedistill")]


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS MB of the largest process, the result) of ``cmd`` run from a fresh helper process,
    so that RUSAGE_CHILDREN holds this command's processes only."""
    helper = ("import resource, subprocess, sys, time, json\nt = time.perf_counter()\n"
              "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
              "print(json.dumps([time.perf_counter() - t, rss, p.returncode, p.stdout[-2000:], p.stderr[-2000:]]))")
    out = subprocess.run([sys.executable, "-c", helper, *cmd], capture_output=True, text=True, cwd=cwd,
                         env={**os.environ, "EDGEDISTILL_PROGRESS": "0"})
    wall, rss, code, stdout, stderr = json.loads(out.stdout)
    return wall, rss, subprocess.CompletedProcess(cmd, code, stdout, stderr)


def serve_cold_start(cmd: list[str], index: Path, cwd: Path) -> tuple[float, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "retrieve", "serve", "--index", str(index), "--port", str(port)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "EDGEDISTILL_PROGRESS": "0"})
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {proc.stderr.read().decode()[-500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/random?k=5", timeout=5) as r:
                    r.read()
                break
            except OSError:
                time.sleep(0.05)
        first = time.perf_counter() - t0
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
        return first, rss
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def measure_env(name: str, venv: Path, src: Path | None, export: Path, images: Path, work: Path) -> dict:
    # from a folder of its own (or the old tree's root): a relative student.pt path in the artifact's metadata then
    # does not resolve, as on a device, and every environment benches the artifact alone
    cmd, cwd = _command(venv, src), src or work
    artifact = next(export.glob("*-onnx-fp32.onnx"))
    index = work / f"index-{name}"
    built = subprocess.run([*cmd, "retrieve", "index", "--model", str(artifact), "--images", str(images), "--out",
                            str(index)], capture_output=True, text=True, cwd=cwd)
    if built.returncode:
        raise RuntimeError(f"{name}: retrieve index failed: {built.stderr[-500:]}")
    query = next(p for p in sorted(images.rglob("*")) if p.is_file())
    search = [timed([*cmd, "retrieve", "search", "--index", str(index), str(query), "-k", "5"], cwd) for _ in range(3)]
    serve = [serve_cold_start(cmd, index, cwd) for _ in range(3)]
    bench_dir = work / f"bench-{name}"
    bench = timed([*cmd, "bench", str(artifact), "--batch-sizes", "1", "--warmup-s", "0.2", "--min-time-s", "0.5",
                   "--rounds", "1", "--out", str(bench_dir)], cwd)
    torch_loaded = subprocess.run([cmd[0], "-c", "import retrieval_demo.server, export.backends.onnx_backend, sys; "
                                   "print('torch' in sys.modules)"], capture_output=True, text=True, cwd=cwd)
    best = lambda rows, i: round(min(r[i] for r in rows), 2)  # noqa: E731
    return {"env": name, "venv": str(venv), "source": str(src) if src else "this tree",
            "size_mb": du_mb(venv), "deploy_side_imports_torch": torch_loaded.stdout.strip() == "True",
            "search_cold_s": best(search, 0), "search_peak_rss_mb": best(search, 1),
            "serve_first_answer_s": best(serve, 0), "serve_peak_rss_mb": best(serve, 1),
            "bench_s": round(bench[0], 1), "bench_peak_rss_mb": round(bench[1]), "bench_exit": bench[2].returncode}


def fresh_sizes(extras: list[str], work: Path) -> dict[str, float]:
    sizes = {}
    for extra in extras:
        venv = work / f"venv-{extra or 'base'}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        spec = f".[{extra}]" if extra else "."
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", spec], cwd=ROOT, check=True)
        sizes[f"base + {extra}" if extra else "base"] = du_mb(venv)
        shutil.rmtree(venv)
    return sizes


@script("python -m tools.footprint")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.footprint", __doc__)
    p.add_argument("--export", required=True, type=Path, help="an export folder (its *-onnx-fp32.onnx is used)")
    p.add_argument("--images", required=True, type=Path, help="images to index")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VENV[@SRC]")
    p.add_argument("--fresh", action="store_true", help="also measure fresh base and base + openvino installs")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        for spec in args.env:
            name, _, rest = spec.partition("=")
            venv, _, src = rest.partition("@")
            rows.append(measure_env(name, Path(venv).resolve(), Path(src).resolve() if src else None,
                                    args.export.resolve(), args.images.resolve(), Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
        sizes = fresh_sizes(["", "openvino"], Path(tmp)) if args.fresh else {}
    result = {"rows": rows, "fresh_install_mb": sizes, "load_before": load_before, "load_after": os.getloadavg()}
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
