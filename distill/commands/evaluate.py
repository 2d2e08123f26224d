"""Evaluate frozen embeddings with labels: weighted kNN (k=20, T=0.07, DINO) and 1-NN (CompRess); a linear probe
and cluster alignment (CompRess's recipes) with --protocol linear|cluster|all.

--model takes a student run folder or student.pt, or any teacher spec (timm:NAME, a TorchScript or ONNX file,
a checkpoint with --model-arch), so teachers and students are measured by the same code.

Example:
  edgedistill eval --model cifar_resnet56.onnx --train cifar10/train --val cifar10/test --train-limit 5000
"""
from __future__ import annotations

import argparse
import os

from distill.commands.common import add_teacher_arguments, add_threads_flag, teacher_options
from distill.core.cli import add_json_flag, nonnegative_int, positive_float, positive_int

HELP = "evaluate a student or teacher with weighted kNN and 1-NN"
PROTOCOLS = ("knn", "nn", "linear", "cluster", "all")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="RUN_DIR|FILE|SPEC", help="student run/checkpoint or teacher spec")
    p.add_argument("--train", required=True, metavar="DIR", help="labelled bank (root/<class>/<image>)")
    p.add_argument("--val", required=True, metavar="DIR", help="labelled queries")
    p.add_argument("--protocol", default="knn", choices=PROTOCOLS,
                   help="knn (weighted, also reports 1-NN), nn, linear (probe: SGD 40 epochs on frozen features), "
                   "cluster (k-means + Hungarian matching) or all; knn and nn are always computed")
    p.add_argument("--train-limit", type=positive_int, metavar="N", help="class-balanced subset of the bank")
    p.add_argument("--val-limit", type=positive_int, metavar="N", help="class-balanced subset of the queries")
    p.add_argument("-k", "--k", type=positive_int, default=20, help="neighbours for weighted kNN")
    p.add_argument("--temperature", type=positive_float, default=0.07, help="weighted-kNN temperature")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--workers", type=nonnegative_int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", metavar="DIR", default=os.environ.get("EDGEDISTILL_EMBEDDINGS"),
                   help="keep embeddings here per model fingerprint and folder, and reuse them "
                        "(default: $EDGEDISTILL_EMBEDDINGS, else none)")
    add_teacher_arguments(p, prefix="model")
    add_threads_flag(p)
    add_json_flag(p)


def load_model(args: argparse.Namespace):
    """An exported artifact through its runtime (no torch: this runs on the device), else a student or teacher
    through torch (the train extra)."""
    overrides = (args.model_input_size, args.model_mean, args.model_std)
    if not args.model_arch and not args.model_weights:
        from distill.core.artifacts import load_artifact

        device = "cpu" if args.device == "auto" else args.device
        backend = load_artifact(args.model, device=device, threads=args.threads)
        if backend is not None:
            backend.preprocess = backend.preprocess.override(*overrides)
            return backend
    from distill.core.deps import require

    require("torch", "train", f"evaluating '{args.model}' (a student or teacher, not an exported artifact)")
    from distill.core.device import resolve_device
    from distill.embedders import load_embedder

    return load_embedder(args.model, teacher_options(args, prefix="model"), resolve_device(args.device))


def run(args: argparse.Namespace) -> dict:
    from distill.core.images import scan_folder
    from distill.evaluate import evaluate_knn

    train = scan_folder(args.train, args.train_limit)
    val = scan_folder(args.val, args.val_limit)
    embedder = load_model(args)
    extra = {"linear": ("linear",), "cluster": ("cluster",), "all": ("linear", "cluster")}.get(args.protocol, ())
    result = evaluate_knn(embedder, train, val, args.k, args.temperature, args.batch_size, args.workers, extra,
                          cache_dir=args.cache)
    out = {"model": args.model, "protocol": args.protocol, **result}
    if args.protocol == "nn":
        out.pop("knn_top1"), out.pop("knn_top5")
    return out


def format_result(r: dict) -> str:
    parts = [f"{k} {r[k]:.4f}" for k in ("knn_top1", "knn_top5", "nn_top1", "linear_top1", "cluster_acc") if k in r]
    return f"{r['model']}: {'  '.join(parts)}  (bank {r['num_train']}, queries {r['num_val']})"
