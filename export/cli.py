"""Export a student to ONNX, OpenVINO IR or TensorRT at fp32 / fp16 / int8, each checked against PyTorch on
real images before it counts as good.

Examples:
  edgedistill export --model runs/seed --format onnx --precision int8 --calib cifar10/train
  edgedistill export --model runs/seed --format all          (every format and precision this machine can build)
  edgedistill export --model student:efficientnet_b0 --img-size 224 --format openvino --parity-data imgs/
"""
from __future__ import annotations

import argparse
from pathlib import Path

from distill.core.cli import add_json_flag, fraction, nonnegative_float, nonnegative_int, positive_float, positive_int
from export.formats import FORMATS

HELP = "export a student to ONNX / OpenVINO / TensorRT with a parity gate"


def _triple(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,OPT,MAX (three whole numbers), got '{text}'") from None
    if not 1 <= lo <= opt <= hi:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= OPT <= MAX, got {text}")
    return lo, opt, hi


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="RUN_DIR|student.pt|student:NAME")
    p.add_argument("--format", default="onnx", choices=[*FORMATS, "all", "auto"],
                   help="one format, all (every format and precision this machine can build), or auto (all, then "
                        "name the fastest artifact that passed the gate as the deployable one: 'picked')")
    p.add_argument("--timing-s", type=nonnegative_float, default=1.0, metavar="S",
                   help="seconds of batch-1 latency measured per artifact after its gate (0: none)")
    p.add_argument("--precision", type=_names, metavar="fp32|fp16|int8[,...]",
                   help="default fp32 (with --format all: every precision)")
    p.add_argument("--calib", metavar="DIR", help="calibration images for int8 (default: the run's training images)")
    p.add_argument("--calib-size", type=positive_int, default=300, metavar="N")
    p.add_argument("--embedding", choices=["backbone", "head"], default="backbone",
                   help="what the artifact outputs: the backbone feature (default, as the papers deploy) or the "
                        "trained projection head's embedding (the teacher's space: e.g. 64-d instead of 1280-d)")
    p.add_argument("--parity-data", metavar="DIR", help="images for the parity check (default: --calib, else the "
                                                        "run's)")
    p.add_argument("--parity-size", type=positive_int, default=200, metavar="N")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=positive_int, metavar="N", help="a static batch size (default: dynamic)")
    batch.add_argument("--dynamic-batch", type=_triple, default=(1, 8, 64), metavar="MIN,OPT,MAX",
                       help="dynamic batch range (the TensorRT optimisation profile; default 1,8,64)")
    p.add_argument("--img-size", type=positive_int, metavar="N", help="export at another input size")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (17 or newer)")
    p.add_argument("--workspace", type=positive_float, default=4.0, metavar="GB", help="TensorRT builder workspace")
    p.add_argument("--onnx-only", action="store_true",
                   help="TensorRT: write the TensorRT-form ONNX (no TensorRT needed here), gate it with onnxruntime, "
                        "and print the trtexec command that builds the engine on the target")
    p.add_argument("--trt-version", type=int, choices=[10, 11],
                   help="TensorRT major version the engine is for (default: the installed one; with --onnx-only and "
                        "none installed, 10, which JetPack 6 ships)")
    p.add_argument("--allow-tf32", action="store_true", help="TensorRT fp32: let the builder use TF32 (off by default)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/export)")
    p.add_argument("--allow-parity-failure", action="store_true",
                   help="keep artifacts that fail the parity gate under their normal names")
    p.add_argument("--per-channel", action="store_true", help="onnxruntime int8: per-channel weights")
    p.add_argument("--exclude-nodes", type=_names, default=(), metavar="A,B",
                   help="onnxruntime int8: ONNX node names to keep in float")
    p.add_argument("--max-knn-drop", type=fraction, metavar="F",
                   help="OpenVINO int8: accuracy-controlled quantisation with this max kNN top-1 drop (labelled data)")
    p.add_argument("--int8-fallback", type=fraction, default=0.75, metavar="F",
                   help="when int8 misses the parity gate, keep up to this fraction of activation quantizers in "
                        "float, the most sensitive first (default 0.75; 0 turns it off)")
    p.add_argument("--calibration", choices=["auto", "minmax", "percentile", "entropy"], default="auto",
                   help="int8 activation ranges: onnxruntime's MinMax, Percentile (99.999) or Entropy calibrator "
                        "(OpenVINO: NNCF's min-max, quantile or histogram estimator); auto tries them in that order "
                        "and keeps the first that meets the target, before any float fallback (default auto)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim simplification")
    p.add_argument("--device", default="cpu", help="where onnxruntime/OpenVINO artifacts run for the parity check")
    p.add_argument("--workers", type=nonnegative_int, default=2)
    add_json_flag(p)


def run(args: argparse.Namespace) -> dict:
    from export.errors import ExportError, ParityError
    from export.exporter import ExportConfig, export_model
    from export.formats import FORMATS

    for flag, folder in (("--calib", args.calib), ("--parity-data", args.parity_data)):
        if folder and not Path(folder).is_dir():
            state = "is not a folder" if Path(folder).exists() else "does not exist"
            raise ExportError(f"{flag} '{folder}' {state}; pass a folder of images (root/<class>/<image> or flat)")
    if args.format == "auto":  # what this machine can build (or write in its ONNX form)
        formats = tuple(name for name, f in FORMATS.items() if f.missing() is None or (args.onnx_only and f.onnx_form))
    else:
        formats = tuple(FORMATS) if args.format == "all" else (args.format,)
    cfg = ExportConfig(model=args.model, formats=formats, precisions=args.precision, calib=args.calib,
                       calib_size=args.calib_size, parity_data=args.parity_data, parity_size=args.parity_size,
                       embedding=args.embedding,
                       batch=args.batch, dynamic_batch=args.dynamic_batch, img_size=args.img_size, opset=args.opset,
                       workspace_gb=args.workspace, out=args.out, allow_parity_failure=args.allow_parity_failure,
                       per_channel=args.per_channel, exclude_nodes=args.exclude_nodes, simplify=not args.no_simplify,
                       device=args.device, max_knn_drop=args.max_knn_drop, workers=args.workers,
                       int8_fallback=args.int8_fallback, calibration=args.calibration, onnx_only=args.onnx_only,
                       trt_version=args.trt_version,
                       allow_tf32=args.allow_tf32, timing_s=args.timing_s, pick=args.format == "auto")
    report = export_model(cfg)
    arts = report["artifacts"]
    # --format all asks for "whatever this machine can build": formats it cannot build do not fail the command.
    counted = [a for a in arts if a["available"] or args.format not in ("all", "auto")]
    if args.format == "auto":  # a precision that fails is simply not a candidate
        counted = [a for a in counted if a["status"] == "ok"] if report.get("picked") else counted
    failed_export = [a for a in counted if a["status"] == "export_failed"]
    failed_parity = [a for a in counted if a["status"] == "parity_failed"]
    if failed_parity and not args.allow_parity_failure:
        names = ", ".join(f"{a['format']} {a['precision']}" for a in failed_parity)
        raise ParityError(f"parity check failed for {names} ({failed_parity[0]['error']}); the artifacts were kept "
                          "as *.failed for inspection; see --allow-parity-failure", result=report)
    if failed_export:
        names = ", ".join(f"{a['format']} {a['precision']}" for a in failed_export)
        raise ExportError(f"could not export {names}: {failed_export[0]['error']}", result=report)
    return report


MARK = {"ok": "✅ ok", "parity_failed": "❎ parity failed", "export_failed": "❌ export failed"}


def _knn_cell(par: dict) -> str:
    """Leave-one-out kNN top-1 on the labelled parity images, as 'artifact/PyTorch' (points)."""
    if not par or par.get("knn") is None:
        return "-"
    return f"{100 * par['knn']:.1f}/{100 * par['knn_reference']:.1f}"


def format_result(report: dict) -> str:
    rows = [("format", "precision", "status", "size MB", "worst cos", "overlap@10", "kNN", "gate", "p50 ms b1",
             "vs fp32", "path / reason")]
    for a in report["artifacts"]:
        par = a["parity"] or {}
        fq = a.get("float_quantizers")
        mark = MARK[a["status"]] + (f" ({fq[0]}/{fq[1]} float)" if fq and fq[0] else "")
        lat, ratio = a.get("latency_ms"), a.get("vs_fp32")
        rows.append((a["format"], a["precision"], mark,
                     f"{a['size_bytes'] / 1e6:.1f}" if a["size_bytes"] else "-",
                     f"{par['min_cosine']:.6f}" if par else "-",
                     f"{par['neighbour_overlap@10']:.3f}" if par else "-",
                     _knn_cell(par),
                     ("failed: " + ", ".join(par["failed"]) if par.get("failed") else "pass") if par else "-",
                     f"{lat:.3f}" if lat is not None else "-",
                     f"{ratio:.2f}x" if ratio is not None and a["precision"] != "fp32" else "-",
                     a["path"] if a["status"] == "ok" else (a["error"] or a["path"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths)) + "  " + str(r[-1]) for r in rows]
    for a in report["artifacts"]:
        if a["precision"] == "int8" and a.get("vs_fp32") is not None and a["vs_fp32"] < 1:
            lines.append(f"note: {a['format']} int8 is slower than {a['format']} fp32 here ({a['vs_fp32']:.2f}x): this "
                         "CPU gains nothing from int8 for this model (see docs/EXPORT.md); prefer fp32 or fp16 here")
    if "picked" in report:
        pk = report["picked"]
        lines.append(f"picked: {pk['path']} ({pk['format']} {pk['precision']}, {pk['latency_ms']:.3f} ms at batch 1, "
                     "the fastest that passed the gate)" if pk else "picked: none (no artifact passed its gate)")
    for a in report["artifacts"]:
        if a.get("trtexec") and a["status"] == "ok":
            lines.append(f"build the {a['precision']} engine on the target: {a['trtexec']}")
    pi = report["parity_images"]
    lines.append(f"parity on {pi['count']} {pi['kind']} images"
                 + (f" from {pi['folder']}" if pi["folder"] else "") + f"; report: {report['out']}/export.json")
    return "\n".join(lines)
