"""``export --format ncnn``: the base ONNX converted by pnnx (Tencent's converter for ncnn) into ncnn's ``.param``
(graph) and ``.bin`` (weights), the runtime of phones and small ARM boards (torch-free, an 11 MB wheel).

Following pnnx's own command line (``pnnx model.onnx inputshape=[1,3,S,S] fp16=0``), with three corrections for
what a silent converter does to a gate: weights are written at the precision asked (pnnx writes fp16 weights
unless ``fp16=0``, which would pass off a half-precision model as fp32); the converter runs as a subprocess whose
exit status and outputs are checked (its Python wrapper ignores both), so a failed conversion is one line; its
scratch files stay in the export's work folder. ncnn has no batch axis: the graph is converted for one image and
the backend (export.backends.ncnn_backend) runs a batch image by image. No int8: the wheels ship no calibration
tools.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from distill.core.atomic import atomic_write_bytes
from export.errors import ExportError


def pnnx_command(onnx_path: Path, img_size: int, precision: str, out_stem: Path) -> list[str]:
    import pnnx

    return [pnnx.EXEC_PATH, str(onnx_path), f"inputshape=[1,3,{img_size},{img_size}]",
            f"fp16={1 if precision == 'fp16' else 0}",
            f"ncnnparam={out_stem}.ncnn.param", f"ncnnbin={out_stem}.ncnn.bin", f"ncnnpy={out_stem}_ncnn.py",
            f"pnnxparam={out_stem}.pnnx.param", f"pnnxbin={out_stem}.pnnx.bin", f"pnnxpy={out_stem}_pnnx.py",
            f"pnnxonnx={out_stem}.pnnx.onnx"]


def build(ctx, precision: str, base_onnx: Path, target: Path, work: Path) -> tuple[Path, dict]:
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"ncnn has no {precision} build here (fp32 and fp16 only; its wheels ship no int8 tools)")
    scratch = work / f"ncnn-{precision}"
    scratch.mkdir(exist_ok=True)
    onnx_copy = scratch / "model.onnx"  # pnnx writes its intermediate files beside its input
    shutil.copyfile(base_onnx, onnx_copy)
    stem = scratch / "model"
    cmd = pnnx_command(onnx_copy, ctx.pre.input_size, precision, stem)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=scratch, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(f"pnnx could not run ({type(exc).__name__}: {exc})") from None
    param, weights = Path(f"{stem}.ncnn.param"), Path(f"{stem}.ncnn.bin")
    if proc.returncode != 0 or not param.is_file() or not weights.is_file() or param.stat().st_size == 0:
        tail = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()][-1:] or ["no output"]
        raise ExportError(f"pnnx failed to convert the ONNX export to ncnn (exit {proc.returncode}: {tail[0][:200]})")
    atomic_write_bytes(target.with_suffix(".bin"), weights.read_bytes())
    atomic_write_bytes(target, param.read_bytes())
    return target, {"converter": "pnnx", "fp16_weights": precision == "fp16", "batch": "one image per call",
                    "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:4]))}
