"""Compute a teacher's embeddings of a folder once and store them memory-mapped (float16), so that
`edgedistill train --teacher-cache CACHE` never runs the teacher (CompRess and SimReg do this for their
largest teachers).

View 0 is the centre crop; --views N adds N-1 fixed random augmentations drawn once (seeded). During training
the student still sees fresh random augmentations while the teacher's side comes from these fixed views. The
cache records a fingerprint of the teacher, its preprocessing, the images and the decode size; train refuses a
cache that does not match its run. The build is written in chunks (--chunk-images): killed part-way, the same
command resumes from the last complete chunk; the cache appears at --out only when it is complete.

Example:
  edgedistill cache-teacher --data cifar10/train --teacher cifar_resnet56.onnx --out runs/cache-r56
"""
from __future__ import annotations

import argparse

from distill.commands.common import add_teacher_arguments, add_threads_flag, teacher_options
from distill.core.cli import add_json_flag, nonnegative_int, positive_int
from distill.core.device import check_device

HELP = "store a teacher's embeddings of a folder for training without teacher forward passes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="DIR", help="the training images (the same --data as train)")
    p.add_argument("--teacher", required=True, metavar="SPEC", help="the same teacher spec as train")
    p.add_argument("--out", required=True, metavar="CACHE", help="cache folder to create")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="cache the class-balanced subset of N images that train --limit N uses")
    p.add_argument("--views", type=positive_int, default=1, help="views per image: 1 = centre crop only")
    p.add_argument("--augment", default="auto", choices=["auto", "mocov2", "light", "none"],
                   help="augmentation preset of views 1.. (auto: light up to 64 px, MoCo-v2 above)")
    p.add_argument("--img-size", type=positive_int, metavar="N",
                   help="the student input size the cache will train (default: the teacher's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-images", type=positive_int, default=4096, metavar="N",
                   help="images per resumable chunk: a killed build resumes from its last complete chunk")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--workers", type=nonnegative_int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cache folder")
    add_teacher_arguments(p)
    add_threads_flag(p)
    add_json_flag(p)


def run(args: argparse.Namespace) -> dict:
    from distill.augment import AugmentConfig
    from distill.core.device import resolve_device
    from distill.core.images import scan_folder
    from distill.teacher_cache import build_teacher_cache
    from distill.teachers import load_teacher

    device = resolve_device(check_device(args.device))
    folder = scan_folder(args.data, args.limit)
    teacher = load_teacher(args.teacher, teacher_options(args), device)
    img_size = args.img_size or teacher.preprocess.input_size
    load_size = max(img_size, teacher.preprocess.input_size)  # what train decodes to, see Trainer
    return build_teacher_cache(teacher, folder, args.out, load_size=load_size, views=args.views,
                               augment=AugmentConfig.preset(args.augment, img_size), seed=args.seed,
                               batch_size=args.batch_size, workers=args.workers, device=device,
                               overwrite=args.overwrite, chunk_images=args.chunk_images)


def format_result(r: dict) -> str:
    return (
        f"cached {r['num_images']} x {r['views']} embeddings ({r['dim']}-d float16, {r['bytes'] / 2**20:.1f} MiB) "
        f"of {r['teacher']} in {r['cache']}" + (f"; skipped {r['num_skipped']} unreadable" if r["num_skipped"] else "")
    )
