"""The cached training step under variants of layout, precision and optimizer (docs/BENCHMARKS.md, "Training
throughput"): images/s of ``Trainer.train_step`` with the teacher read from a cache built first, and optionally a
``torch.profiler`` table of one variant.

A variant is ``+``-joined options: ``base`` (NCHW, fp32, the trainer's SGD), ``cl`` (NHWC), ``bf16`` (CPU bf16
autocast), ``foreach`` (``foreach=True`` SGD), ``compile`` (``torch.compile`` of the student), ``prof`` (print the
profile table).

  python -m tools.experiments.step_variants --data .cache/data/cifar10/train \
      --teacher ../shared/testbed/teachers/cifar_resnet56.torchscript.pt --variants base+prof,cl,bf16,cl+bf16,foreach
"""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from distill.core.cli import script, tool_parser

OPTIONS = ("base", "cl", "bf16", "foreach", "compile", "prof")


def run_variant(name: str, data: str, teacher: str, batch: int, cache: Path, work: Path, steps: int = 10,
                warmup: int = 3) -> dict:
    import torch

    from distill.trainer import Trainer
    from tools.bench_training import TrainBenchConfig, _train_config

    opts = set(name.split("+"))
    cfg = TrainBenchConfig(data=data, teacher=teacher, batch_size=batch, limit=4096)
    trainer = Trainer(_train_config(cfg, work / name, teacher_cache=str(cache), queue_size=4096, augmentation="auto",
                                    compile="compile" in opts, channels_last="cl" in opts))
    trainer.model.train()
    if "foreach" in opts:
        params = list(trainer.model.parameters()) + list(trainer.loss.parameters())
        trainer.optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=True)
    batches = iter(trainer.batch_stream().epoch(0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in opts else contextlib.nullcontext()
    with autocast:  # train_step's own autocast is CUDA-only; this one covers the CPU step
        for _ in range(warmup):
            b = next(batches)
            trainer.train_step(b.images, b.indices)
        prof = (torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if "prof" in opts
                else contextlib.nullcontext())
        with prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                b = next(batches)
                trainer.train_step(b.images, b.indices)
            seconds = time.perf_counter() - t0
    if "prof" in opts:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    return {"variant": name, "batch": batch, "images_per_s": round(steps * batch / seconds, 1)}


@script("tools.experiments.step_variants")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.experiments.step_variants", __doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--variants", default="base,cl")
    args = p.parse_args(argv)
    variants = args.variants.split(",")
    bad = [o for v in variants for o in v.split("+") if o not in OPTIONS]
    if bad:
        print(f"tools.experiments.step_variants: error: unknown option {bad[0]!r}; valid: {', '.join(OPTIONS)}",
              file=sys.stderr)
        return 2
    from distill.augment import AugmentConfig
    from distill.teacher_cache import build_teacher_cache
    from distill.trainer import Trainer
    from tools.bench_training import TrainBenchConfig, _train_config

    with tempfile.TemporaryDirectory(prefix="edgedistill-variants-") as tmp:
        work = Path(tmp)
        probe = Trainer(_train_config(TrainBenchConfig(data=args.data, teacher=args.teacher,
                                                       batch_size=args.batch_size, limit=4096), work / "probe"))
        build_teacher_cache(probe.teacher, probe.folder, work / "cache", load_size=probe.load_size, views=1,
                            augment=AugmentConfig.none(), workers=2, device=probe.device)
        del probe
        for v in variants:
            print(json.dumps(run_variant(v, args.data, args.teacher, args.batch_size, work / "cache", work)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
