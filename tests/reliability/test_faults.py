"""Fault injection over every command: each fault runs the real command in a subprocess and must end with the
documented exit code, exactly one ``edgedistill: error:`` line naming the problem, no traceback, and every file
that existed before untouched (same bytes). docs/RELIABILITY.md counts the faults."""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.reliability.faults import FAULTS, OV_XML, Fault, delete, truncate

pytestmark = pytest.mark.slow

OPENVINO_FAULTS = [
    Fault("bench-openvino-bin-truncated", ("bench", "--batch-sizes", "1", "--min-time-s", "0.05", "--rounds", "1",
                                           "--out", "{ws}/report", OV_XML),
          "openvino", (truncate("export_ov/mobilenetv3_small_050-openvino-fp32.bin"),)),
    Fault("eval-openvino-bin-missing", ("eval", "--model", OV_XML, "--train", "{ws}/images", "--val", "{ws}/queries",
                                        "--workers", "0"), "no weights file",
          (delete("export_ov/mobilenetv3_small_050-openvino-fp32.bin"),)),
    Fault("eval-openvino-xml-truncated", ("eval", "--model", OV_XML, "--train", "{ws}/images", "--val", "{ws}/queries",
                                          "--workers", "0"), ".xml", (truncate("export_ov/mobilenetv3_small_050-openvino-fp32.xml"),)),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(args: list[str], ws: Path, *, preexec=None, env: dict | None = None, wrapper: str | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    argv = [a.replace("{ws}", str(ws)) for a in args]
    full_env = {**os.environ, "EDGEDISTILL_PROGRESS": "0", "HF_HUB_OFFLINE": "1", **(env or {})}
    cmd = [sys.executable, "-m", "distill", *argv] if wrapper is None else [sys.executable, "-c", wrapper, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout,
                          preexec_fn=preexec)


def assert_clean_failure(proc: subprocess.CompletedProcess, needle: str, code: int = 2) -> str:
    err = proc.stderr
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{err[-2000:]}"
    lines = [line for line in err.splitlines()
             if line.startswith("edgedistill:") and not line.startswith("edgedistill: warning:")]
    assert len(lines) == 1, err[-2000:]
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


ROOT_ENTRIES = set(os.listdir(ROOT))


def assert_intact(before: dict[str, str], ws: Path) -> None:
    strays = set(os.listdir(ROOT)) - ROOT_ENTRIES - {".pytest_cache"}
    assert not strays, f"written into the working directory: {strays}"
    after = snapshot(ws)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert not changed, f"files changed or lost: {changed}"
    stray = [name for name in after if name not in before and Path(name).name.endswith(".tmp")]
    assert not stray, f"temporary files left behind: {stray}"


def check_fault(fault: Fault, ws: Path) -> None:
    for damage in fault.damage:
        damage(ws)
    before = snapshot(ws)
    assert_clean_failure(run(list(fault.args), ws), fault.needle, fault.code)
    assert_intact(before, ws)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(fault: Fault, ws: Path):
    check_fault(fault, ws)


@pytest.mark.openvino
@pytest.mark.parametrize("fault", OPENVINO_FAULTS, ids=[f.id for f in OPENVINO_FAULTS])
def test_openvino_fault(fault: Fault, ws: Path):
    check_fault(fault, ws)


# -- a disk that fills during a write ---------------------------------------------------------------------------
def _file_size_limit(nbytes: int):
    """A full disk, simulated: writes past ``nbytes`` fail with EFBIG (SIGXFSZ ignored, as a full disk would not
    signal). Every earlier file of the run must survive: writes go through a temporary file and a rename."""
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return preexec


DISK_FULL = {
    "export": ("export", "--model", "{ws}/run", "--format", "onnx", "--precision", "fp32", "--parity-size", "8",
               "--timing-s", "0.1", "--workers", "0", "--out", "{ws}/export"),
    "train": ("train", "--data", "{ws}/images", "--teacher", "{ws}/teacher.torchscript.pt", "--student",
              "mobilenetv3_small_050", "--img-size", "32", "--batch-size", "8", "--max-steps", "1", "--queue-size", "64",
              "--workers", "0", "--out", "{ws}/run2"),
    "retrieve index": ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out",
                       "{ws}/index3", "--workers", "0"),
    "cache-teacher": ("cache-teacher", "--data", "{ws}/images", "--teacher", "{ws}/teacher.torchscript.pt", "--out",
                      "{ws}/cache", "--overwrite", "--workers", "0", "--chunk-images", "8"),
}


@pytest.mark.parametrize("command", list(DISK_FULL))
def test_disk_full(command: str, ws: Path):
    before = snapshot(ws)
    proc = run(list(DISK_FULL[command]), ws, preexec=_file_size_limit(512), env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert_clean_failure(proc, "too large")
    assert_intact(before, ws)


# -- an interrupt in the middle of the work ---------------------------------------------------------------------
# The command runs in-process under a wrapper that sends the signal to itself at its Nth atomic write: the
# interrupt lands while a file is being written, deterministically.
WRAPPER = """
import os, signal, sys
from distill.core import atomic
count, at, sig = [0], int(os.environ["FAULT_AT_WRITE"]), getattr(signal, os.environ["FAULT_SIGNAL"])
original = atomic.atomic_write_bytes
def interrupted(path, data):
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), sig)
    return original(path, data)
atomic.atomic_write_bytes = interrupted
from distill.core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def default_sigint() -> None:
    """A shell starts background jobs with SIGINT ignored, and Python keeps it ignored (no KeyboardInterrupt);
    the command must see Ctrl-C as a user's terminal delivers it, however the test run was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


INTERRUPT = {
    "export": (("export", "--model", "{ws}/run", "--format", "onnx", "--precision", "fp32", "--parity-size", "8",
                "--timing-s", "0.1", "--workers", "0", "--out", "{ws}/export2"), 1, "export2"),
    "cache-teacher": (("cache-teacher", "--data", "{ws}/images", "--teacher", "{ws}/teacher.torchscript.pt", "--out",
                       "{ws}/cache2", "--workers", "0", "--chunk-images", "8"), 2, "cache2"),
    "retrieve index": (("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out",
                        "{ws}/index2", "--workers", "0"), 1, "index2"),
}


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", list(INTERRUPT))
def test_interrupt(command: str, sig: str, ws: Path):
    args, at, out = INTERRUPT[command]
    before = snapshot(ws)
    proc = run(list(args), ws, wrapper=WRAPPER, env={"FAULT_AT_WRITE": str(at), "FAULT_SIGNAL": sig},
               preexec=default_sigint)
    code = 128 + getattr(signal, sig)
    assert_clean_failure(proc, "interrupted" if sig == "SIGINT" else "stopped by SIGTERM", code)
    assert_intact(before, ws)
    # the output is absent or whole: no final file name holds a half-written file
    for p in (ws / out).rglob("*") if (ws / out).exists() else []:
        assert not p.name.endswith(".tmp"), p


# -- environment faults that need their own set-up ----------------------------------------------------------------
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_images(ws: Path):
    for p in (ws / "images").rglob("*.png"):
        p.chmod(0)
    before = snapshot_names(ws)
    proc = run(["eval", "--model", "{ws}/run", "--train", "{ws}/images", "--val", "{ws}/queries", "--workers", "0"], ws)
    assert_clean_failure(proc, "could be read")
    assert snapshot_names(ws) == before


def snapshot_names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_serve_port_in_use(ws: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        before = snapshot(ws)
        proc = run(["retrieve", "serve", "--index", "{ws}/index", "--port", str(port)], ws, timeout=120)
    assert_clean_failure(proc, str(port))
    assert_intact(before, ws)
