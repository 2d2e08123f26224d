"""TensorRT engines from the exported ONNX, for TensorRT 10.x and 11.x.

The build is split in two: :func:`plan_engine` decides everything (which ONNX, the optimisation profile for the
batch range, the builder flags, the workspace limit, the timing cache) without TensorRT, so it is testable on
any machine; :func:`build_engine` hands the plan to TensorRT's builder and ONNX parser.

The two supported major versions differ in how precision is chosen (NVIDIA's 10.x -> 11.x migration guide):

* **10.x** (JetPack 6 ships it): weak typing. fp16 is the fp32 ONNX built with ``BuilderFlag.FP16``; int8 is
  the QDQ ONNX built with ``INT8`` and ``FP16`` (so layers left in float need not run in fp32).
* **11.x**: networks are always strongly typed and the precision flags are gone (deprecated since 10.12).
  Precision lives in the graph: fp16 is an fp16 ONNX with fp32 inputs and outputs (onnxconverter's float16
  conversion, ``keep_io_types``), int8 the QDQ ONNX, and no precision flag is set.

Both: int8 is explicit quantisation (symmetric S8S8 QDQ with float biases, :func:`export.onnx_export.to_int8`);
no calibrator. TF32 is cleared for fp32 engines unless ``allow_tf32`` (builders enable it by default on Ampere
and later, and an fp32 engine is judged against the fp32 gate; Polygraphy clears it the same way).

``edgedistill export --format tensorrt --onnx-only`` writes the TensorRT-form ONNX with no TensorRT installed,
gates it with onnxruntime, and prints the ``trtexec`` line that builds the engine on the target (a Jetson).
"""
from __future__ import annotations

import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from distill.core.atomic import atomic_write_bytes
from distill.core.deps import require
from export.errors import ExportError
from export.batch import BatchSpec
from export.onnx_export import INPUT_NAME

SUPPORTED_MAJORS = (10, 11)
DEFAULT_MAJOR = 10  # for --onnx-only without TensorRT here: JetPack 6 ships TensorRT 10.x
# precision flags of the weakly typed 10.x builds; 11.x has none (strong typing)
FLAGS_10 = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}


@dataclass(frozen=True)
class EnginePlan:
    onnx: str  # the ONNX the parser consumes (the fp16 graph for 11.x fp16, the QDQ one for int8)
    engine: str
    input_name: str
    min_shape: tuple[int, int, int, int]
    opt_shape: tuple[int, int, int, int]
    max_shape: tuple[int, int, int, int]
    flags: tuple[str, ...]  # tensorrt.BuilderFlag names to set
    workspace_bytes: int
    timing_cache: str
    trt_major: int = DEFAULT_MAJOR
    strongly_typed: bool = False  # NetworkDefinitionCreationFlag.STRONGLY_TYPED (always, in effect, on 11.x)
    clear_flags: tuple[str, ...] = ()  # tensorrt.BuilderFlag names to clear (TF32 for fp32)
    precision: str = "fp32"

    def to_dict(self) -> dict:
        return asdict(self)


def tensorrt_major(trt: ModuleType) -> int:
    """The major version of an imported ``tensorrt`` module; an unsupported one is refused."""
    try:
        major = int(str(trt.__version__).split(".")[0])
    except (AttributeError, ValueError):
        raise ExportError("cannot read tensorrt.__version__; install TensorRT 10.x or 11.x") from None
    if major not in SUPPORTED_MAJORS:
        raise ExportError(f"TensorRT {trt.__version__} is not supported; edgedistill supports TensorRT "
                          f"{' and '.join(f'{m}.x' for m in SUPPORTED_MAJORS)}")
    return major


def needs_fp16_onnx(precision: str, trt_major: int) -> bool:
    """Whether the engine's ONNX must itself be fp16 (strong typing: 11.x)."""
    return precision == "fp16" and trt_major >= 11


def plan_engine(onnx_path: Path, engine_path: Path, precision: str, img_size: int, batch: BatchSpec,
                workspace_gb: float = 4.0, timing_cache: Path | None = None, trt_major: int = DEFAULT_MAJOR,
                allow_tf32: bool = False) -> EnginePlan:
    if precision not in FLAGS_10:
        raise ExportError(f"TensorRT precision must be one of {', '.join(FLAGS_10)}, got '{precision}'")
    if trt_major not in SUPPORTED_MAJORS:
        raise ExportError(f"TensorRT {trt_major}.x is not supported (supported: 10.x, 11.x)")
    if workspace_gb <= 0:
        raise ExportError(f"--workspace must be a positive number of GB, got {workspace_gb}")
    lo, opt, hi = batch.profile()
    if not 1 <= lo <= opt <= hi:
        raise ExportError(f"--dynamic-batch needs 1 <= MIN <= OPT <= MAX, got {lo},{opt},{hi}")
    shape = lambda b: (b, 3, img_size, img_size)  # noqa: E731
    strong = trt_major >= 11
    return EnginePlan(str(onnx_path), str(engine_path), INPUT_NAME, shape(lo), shape(opt), shape(hi),
                      () if strong else FLAGS_10[precision], int(workspace_gb * (1 << 30)),
                      str(timing_cache or engine_path.with_name("tensorrt.timing.cache")), trt_major, strong,
                      ("TF32",) if precision == "fp32" and not allow_tf32 else (), precision)


def trtexec_command(plan: EnginePlan) -> str:
    """The ``trtexec`` line that builds the same engine on the target (profile shapes included)."""
    dims = lambda s: "x".join(map(str, s))  # noqa: E731
    name = plan.input_name
    args = ["trtexec", f"--onnx={Path(plan.onnx).name}", f"--saveEngine={Path(plan.engine).name}",
            f"--minShapes={name}:{dims(plan.min_shape)}", f"--optShapes={name}:{dims(plan.opt_shape)}",
            f"--maxShapes={name}:{dims(plan.max_shape)}",
            f"--memPoolSize=workspace:{plan.workspace_bytes >> 20}M",
            f"--timingCacheFile={Path(plan.timing_cache).name}"]
    args += [f"--{flag.lower()}" for flag in plan.flags]  # 10.x: --fp16, --int8
    if "TF32" in plan.clear_flags:
        args.append("--noTF32")
    return " ".join(shlex.quote(a) for a in args)


def check_available() -> ModuleType:
    """The tensorrt module, or the one-line error naming the extra and the CUDA requirement."""
    import torch

    trt = require("tensorrt", "tensorrt", "TensorRT engines (also needs an NVIDIA GPU with CUDA)")
    if not torch.cuda.is_available():
        raise ExportError("TensorRT needs an NVIDIA GPU with CUDA and none is visible here; "
                          "install with pip install 'edgedistill[tensorrt]' on a CUDA machine, or pass --onnx-only "
                          "to write the TensorRT-ready ONNX and build the engine on the target with trtexec")
    return trt


def build_engine(plan: EnginePlan, trt: ModuleType | None = None) -> Path:
    """Parse the plan's ONNX, build and serialise the engine, and update the timing cache.

    ``trt`` is the tensorrt module (imported and checked here when not given; tests pass a stand-in).
    """
    trt = trt or check_available()
    if tensorrt_major(trt) != plan.trt_major:
        raise ExportError(f"the plan is for TensorRT {plan.trt_major}.x but {trt.__version__} is installed")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(plan.onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected '{plan.onnx}': {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.clear_flags:
        if hasattr(trt.BuilderFlag, flag):
            config.clear_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, plan.min_shape, plan.opt_shape, plan.max_shape)
    config.add_optimization_profile(profile)
    cache_path = Path(plan.timing_cache)
    try:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        accepted = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
    except Exception:  # TensorRT raises its own error types on a damaged cache
        accepted = False
    if not accepted:
        raise ExportError(f"TensorRT refused the timing cache '{cache_path}' (corrupt, or from another TensorRT "
                          "version or GPU); delete it and export again")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT could not build an engine (see the TensorRT log above)")
    atomic_write_bytes(plan.engine, bytes(serialized))
    atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return Path(plan.engine)


def engine_onnx(ctx, precision: str, base_onnx: Path, dst: Path, trt_major: int) -> tuple[Path, dict]:
    """The ONNX TensorRT builds ``precision`` from (its TensorRT form) at ``dst``, and what that cost."""
    from export.onnx_export import to_fp16, to_int8
    from export.qdq import onnx_fallback

    options: dict = {}
    if precision == "int8":
        to_int8(base_onnx, dst, ctx.calibration(), symmetric_activations=True, batch=ctx.batch)
        options["fallback"] = onnx_fallback(ctx, dst).to_dict()  # judged with onnxruntime
    elif needs_fp16_onnx(precision, trt_major):
        to_fp16(base_onnx, dst)
    else:
        shutil.copyfile(base_onnx, dst)
    return dst, options


def build(ctx, precision: str, base_onnx: Path, target: Path, work: Path) -> tuple[Path, dict]:
    """The ``tensorrt`` row of :data:`export.formats.FORMATS`.

    With ``--onnx-only`` the artifact is the TensorRT-form ONNX (``<stem>-tensorrt-<precision>.onnx``, gated
    with onnxruntime) and the options carry the ``trtexec`` command; otherwise an engine is built here.
    """
    cfg = ctx.cfg
    if cfg.onnx_only:
        major = cfg.trt_version or _installed_major() or DEFAULT_MAJOR
        onnx_path = target.with_suffix(".onnx")
        engine_onnx(ctx, precision, base_onnx, onnx_path, major)
        plan = plan_engine(onnx_path, target, precision, ctx.pre.input_size, ctx.batch, cfg.workspace_gb,
                           trt_major=major, allow_tf32=cfg.allow_tf32)
        options = {"onnx_only": True, "trt_major": major, "plan": plan.to_dict(), "trtexec": trtexec_command(plan)}
        if precision == "fp16" and not needs_fp16_onnx(precision, major):
            options["parity_note"] = ("the fp32 graph: TensorRT 10.x picks fp16 kernels at build time (--fp16), so "
                                      "the gate here checks the graph, not the engine's fp16 arithmetic")
        return onnx_path, options
    trt = check_available()
    major = tensorrt_major(trt)
    if cfg.trt_version and cfg.trt_version != major:
        raise ExportError(f"--trt-version {cfg.trt_version} asked for, but TensorRT {trt.__version__} is installed")
    onnx_in, options = engine_onnx(ctx, precision, base_onnx, work / f"tensorrt-{precision}.onnx", major)
    plan = plan_engine(onnx_in, target, precision, ctx.pre.input_size, ctx.batch, cfg.workspace_gb,
                       trt_major=major, allow_tf32=cfg.allow_tf32)
    build_engine(plan, trt)
    return target, {**options, "trt_major": major, "plan": plan.to_dict(), "trtexec": trtexec_command(plan)}


def _installed_major() -> int | None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt as trt

        return tensorrt_major(trt)
    except (ImportError, ExportError):
        return None
