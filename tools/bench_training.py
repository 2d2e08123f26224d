"""Training throughput: images/s of one distillation step, the ways of doing it measured in one run.

* ``reference``: what the official SEED/CompRess code does each step: JPEG decoding and MoCo-style PIL
  augmentation per image in data-loader workers, then teacher and student forward on the same batch;
* ``online``: this project's step: images decoded once (uint8 in memory), augmented as a batch on the
  training device, teacher forward, student forward and backward;
* ``cached``: the same, with the teacher's embeddings read from ``edgedistill cache-teacher`` output;
* the online and cached steps also ``compiled`` (``torch.compile`` of the student) when asked.

The reference style keeps torch's default NCHW layout, as the official code does; this project's steps run the
student (and a PyTorch teacher's input) in NHWC (``TrainConfig.channels_last``), and the cached step is measured
once more in NCHW to show what the layout alone buys.

Next to them stands the compute floor: FLOPs of one teacher forward plus three student forwards (forward and
backward) per image, over the measured peak of the device. Run ``python -m tools.bench_training --help``.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from distill.config import TrainConfig
from distill.core.atomic import atomic_write_json
from distill.core.cli import script, tool_parser
from distill.teachers import TeacherOptions, load_teacher
from distill.trainer import Trainer

MODES = ("reference", "online", "cached")


@dataclass
class TrainBenchConfig:
    data: str  # training images (root/<class>/<image>)
    teacher: str  # teacher spec, as for train
    student: str = "mobilenetv3_large_100"
    img_size: int | None = None  # student input (default: the teacher's)
    batch_size: int = 256
    limit: int = 4096  # images used (decoded once for online/cached; streamed for reference)
    steps: int = 12  # timed steps per mode
    warmup: int = 3  # untimed steps first (compiled: compilation happens here)
    workers: int = 2  # reference-style decoding workers (its own data loader)
    device: str = "auto"
    modes: tuple[str, ...] = MODES
    compiled: bool = False  # also measure compiled_modes with torch.compile
    compile_mode: str = "default"  # torch.compile mode of the compiled rows (reduce-overhead: CUDA graphs)
    compiled_modes: tuple[str, ...] = ("online", "cached")
    nchw: bool = True  # also the cached step in NCHW (what the NHWC layout buys)
    teacher_arch: str | None = None
    teacher_drop_head: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def _train_config(cfg: TrainBenchConfig, out: Path, **kw) -> TrainConfig:
    return TrainConfig(data=cfg.data, teacher=cfg.teacher, student=cfg.student, img_size=cfg.img_size,
                       batch_size=cfg.batch_size, limit=cfg.limit, out=str(out), in_memory="on", device=cfg.device,
                       workers=cfg.workers, teacher_options=TeacherOptions(arch=cfg.teacher_arch, drop_head=cfg.teacher_drop_head),
                       epochs=1000, **kw)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loader(trainer: Trainer, cfg: TrainBenchConfig):
    """The official code's input pipeline: PIL decode + MoCo-v2 transforms per image in worker processes."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Dataset

    from distill.core.images import load_rgb

    parts = trainer.parts
    size, pre = parts.cfg.img_size, parts.teacher.preprocess
    ops = [T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
           T.RandomGrayscale(p=0.2)]
    if size >= 64:
        ops.append(T.RandomApply([T.GaussianBlur(size // 10 * 2 + 1, (0.1, 2.0))], p=0.5))
    ops += [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(pre.mean, pre.std)]
    transform, folder = T.Compose(ops), parts.folder

    class Images(Dataset):
        def __len__(self):
            return len(folder)

        def __getitem__(self, i):
            return transform(load_rgb(folder.absolute(i)))

    return DataLoader(Images(), batch_size=parts.local_batch, shuffle=True, drop_last=True,
                      num_workers=cfg.workers, pin_memory=parts.device.type == "cuda",
                      persistent_workers=cfg.workers > 0)


def reference_step(trainer: Trainer, x: torch.Tensor) -> float:
    """Teacher and student forward on the same (already augmented, normalised) batch, then the update."""
    parts, step = trainer.parts, trainer.step_fn
    x = x.to(parts.device, non_blocking=True)
    b = x.shape[0]
    size = parts.teacher.preprocess.input_size
    t_x = x if x.shape[-1] == size else torch.nn.functional.interpolate(
        x, size=size, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad(), step.autocast():
        t = parts.teacher(t_x).float().view(1, b, -1)
    with step.autocast():
        s = parts.forward(x).float().view(1, b, -1)
    loss = parts.loss(s, t, None)
    step.update(loss)
    return float(loss.detach())


def _time_steps(step, batches, cfg: TrainBenchConfig, device: torch.device) -> dict:
    """Run ``warmup`` then ``steps`` steps (data fetching included); images/s over the timed ones."""
    it = iter(batches)
    for _ in range(cfg.warmup):
        step(next(it))
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        step(next(it))
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 3), "images_per_s": round(cfg.steps * cfg.batch_size / seconds, 1)}


def _cycle(make_iter):
    while True:
        yield from make_iter()


def measure_mode(cfg: TrainBenchConfig, mode: str, compiled: bool, work: Path, cache: Path | None,
                 channels_last: bool | None = None) -> dict:
    # the reference style runs the student as the official code does: NCHW (torch's default layout); this
    # project's steps run it in NHWC (TrainConfig.channels_last) unless asked otherwise
    channels_last = mode != "reference" if channels_last is None else channels_last
    out = work / f"{mode}{'-compiled' if compiled else ''}{'' if channels_last else '-nchw'}"
    tcfg = _train_config(cfg, out, teacher_cache=str(cache) if mode == "cached" else None, compile=compiled,
                         compile_mode=cfg.compile_mode, queue_size=4096, augmentation="auto",
                         channels_last=channels_last)
    trainer = Trainer(tcfg)
    trainer.parts.model.train()
    if mode == "reference":
        loader = reference_loader(trainer, cfg)
        result = _time_steps(lambda x: reference_step(trainer, x), _cycle(lambda: iter(loader)), cfg, trainer.device)
    else:
        stream = trainer.batch_stream()
        epochs = iter(range(10 ** 6))
        batches = _cycle(lambda: stream.epoch(next(epochs)))
        result = _time_steps(lambda b: trainer.train_step(b.images, b.indices), batches, cfg, trainer.device)
    return {"mode": mode, "compiled": compiled, "layout": "NHWC" if channels_last else "NCHW", **result}


def compute_floor(cfg: TrainBenchConfig, device: torch.device) -> dict:
    """FLOPs per image (teacher forward + 3 x student forward) and the images/s the device's peak allows."""
    from bench.environment import peak_gflops
    from bench.flops import count_flops
    from distill.students import create_student

    teacher = load_teacher(cfg.teacher, TeacherOptions(arch=cfg.teacher_arch, drop_head=cfg.teacher_drop_head))
    size = cfg.img_size or teacher.preprocess.input_size
    student_flops = count_flops(create_student(cfg.student, img_size=size), size)
    teacher_flops = None
    module = getattr(teacher, "module", None)
    if module is not None:
        teacher_flops = count_flops(module, teacher.preprocess.input_size)
    if device.type == "cuda":
        peak, dtype = cuda_peak_gflops(), "bf16"
    else:
        peak, dtype = peak_gflops(torch.get_num_threads()), "fp32"
    per_image = 3 * student_flops + (teacher_flops or 0)
    return {"student_gflops": student_flops / 1e9, "teacher_gflops": None if teacher_flops is None else teacher_flops / 1e9,
            "peak_gflops": round(peak, 1), "peak_dtype": dtype,
            "floor_images_per_s": round(peak * 1e9 / per_image, 1) if per_image else None}


def cuda_peak_gflops(n: int = 8192) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9


def run_training_bench(cfg: TrainBenchConfig, out: str | None = None) -> dict:
    from distill.augment import AugmentConfig
    from distill.teacher_cache import build_teacher_cache as build

    with tempfile.TemporaryDirectory(prefix="edgedistill-trainbench-") as tmp:
        work = Path(tmp)
        probe = Trainer(_train_config(cfg, work / "probe"))
        device = probe.device
        cache = None
        cache_seconds = None
        if "cached" in cfg.modes:
            t0 = time.perf_counter()
            cache = work / "cache"
            build(probe.teacher, probe.folder, cache, load_size=probe.parts.load_size, views=1,
                  augment=AugmentConfig.none(), workers=cfg.workers, device=device)
            cache_seconds = round(time.perf_counter() - t0, 2)
        del probe
        rows = []
        for compiled in ((False, True) if cfg.compiled else (False,)):
            for mode in (m for m in cfg.modes if not compiled or m in cfg.compiled_modes):
                rows.append(measure_mode(cfg, mode, compiled, work, cache))
                print(json.dumps(rows[-1]), file=sys.stderr)
        if cfg.nchw and "cached" in cfg.modes:  # the same cached step in torch's default layout: what NHWC buys
            rows.append(measure_mode(cfg, "cached", False, work, cache, channels_last=False))
            print(json.dumps(rows[-1]), file=sys.stderr)
    ref = next((r["images_per_s"] for r in rows if r["mode"] == "reference" and not r["compiled"]), None)
    for r in rows:
        r["vs_reference"] = round(r["images_per_s"] / ref, 2) if ref else None
    report = {"config": asdict(cfg), "device": _device_name(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cache_build_seconds": cache_seconds, "rows": rows,
              "floor": compute_floor(cfg, device)}
    if out:
        atomic_write_json(out, report)
    return report


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from bench.environment import cpu_info

    return cpu_info().get("model", "cpu")


def render_markdown(report: dict, command: str) -> str:
    c, f = report["config"], report["floor"]
    lines = [f"Student `{c['student']}` from `{Path(c['teacher']).name}`"
             f"{' (' + c['teacher_arch'] + ', random weights)' if c.get('teacher_arch') else ''}, batch {c['batch_size']}, "
             f"{c['steps']} timed steps after {c['warmup']} warm-up, on {report['device']} ({report['threads']} threads, "
             f"torch {report['torch']}). Cache build: {report['cache_build_seconds']} s.", "",
             "| step | layout | compiled | images/s | x reference-style |", "|---|---|---|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['mode']} | {r.get('layout', '-')} | {'yes' if r['compiled'] else 'no'} | {r['images_per_s']:.0f} | "
                     f"{r['vs_reference'] if r['vs_reference'] is not None else '-'} |")
    teacher = f"{f['teacher_gflops']:.3f}" if f["teacher_gflops"] is not None else "unknown (not a PyTorch module)"
    student_only = f["peak_gflops"] / (3 * f["student_gflops"])
    lines += ["", f"Compute floor: student {f['student_gflops']:.3f} GFLOPs x 3 + teacher {teacher} GFLOPs per image "
              f"over a measured {f['peak_dtype']} peak of {f['peak_gflops']:.0f} GFLOP/s = "
              f"{f['floor_images_per_s']:.0f} images/s with the teacher's forward (reference, online), "
              f"{student_only:.0f} images/s without it (cached).", "", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


@script("tools.bench_training")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.bench_training", __doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--teacher-arch", help="architecture of a weights-file teacher (timm:NAME)")
    p.add_argument("--teacher-drop-head", nargs="*", default=[])
    p.add_argument("--student", default="mobilenetv3_large_100")
    p.add_argument("--img-size", type=int)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=4096)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--compiled", action="store_true", help="also measure the online and cached steps with torch.compile")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode of the compiled rows (reduce-overhead: CUDA graphs on a GPU)")
    p.add_argument("--compiled-modes", default="online,cached",
                   help="which of the --modes --compiled measures compiled as well (each one compiles once)")
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("--markdown", help="write a Markdown section here")
    p.add_argument("--doc", help="also put the section between <!-- training:begin/end --> in this file")
    args = p.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    compiled_modes = tuple(m for m in args.compiled_modes.split(",") if m)
    bad = [m for m in modes + compiled_modes if m not in MODES]
    if bad:
        print(f"tools.bench_training: error: unknown mode {bad[0]!r}; valid: {', '.join(MODES)}", file=sys.stderr)
        return 2
    cfg = TrainBenchConfig(data=args.data, teacher=args.teacher, student=args.student, img_size=args.img_size,
                           batch_size=args.batch_size, limit=args.limit, steps=args.steps, warmup=args.warmup,
                           workers=args.workers, device=args.device, modes=modes, compiled=args.compiled, compile_mode=args.compile_mode,
                           compiled_modes=compiled_modes,
                           teacher_arch=args.teacher_arch, teacher_drop_head=tuple(args.teacher_drop_head))
    report = run_training_bench(cfg, args.out)
    text = render_markdown(report, "python -m tools.bench_training " + " ".join(argv or sys.argv[1:]))
    if args.markdown:
        from distill.core.atomic import atomic_write_text

        atomic_write_text(args.markdown, text)
    if args.doc:
        from distill.core.atomic import write_between_markers

        write_between_markers(Path(args.doc), "training", text)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
