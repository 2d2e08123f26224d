"""TensorRT engines from the exported ONNX, through the TensorRT 10+ Python API.

The build is split in two: :func:`plan_engine` decides everything (which ONNX, the optimisation profile for the
batch range, the builder flags, the workspace limit, the timing cache) without TensorRT, so it is testable on
any machine; :func:`build_engine` hands the plan to TensorRT's builder and ONNX parser.

int8 uses explicit quantisation: a QDQ ONNX with symmetric int8 activations and weights (TensorRT's form),
built with the INT8 flag (and FP16 so that layers left unquantised need not fall back to fp32). TensorRT 10
deprecates implicit calibration, so no calibrator is used.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from distill._deps import require
from distill.checkpoint import atomic_write_bytes
from export.errors import ExportError
from export.onnx_export import INPUT_NAME, BatchSpec

FLAGS = {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}


@dataclass(frozen=True)
class EnginePlan:
    onnx: str  # the ONNX the parser consumes (the QDQ one for int8)
    engine: str
    input_name: str
    min_shape: tuple[int, int, int, int]
    opt_shape: tuple[int, int, int, int]
    max_shape: tuple[int, int, int, int]
    flags: tuple[str, ...]  # tensorrt.BuilderFlag names
    workspace_bytes: int
    timing_cache: str

    def to_dict(self) -> dict:
        return asdict(self)


def plan_engine(onnx_path: Path, engine_path: Path, precision: str, img_size: int, batch: BatchSpec,
                workspace_gb: float = 4.0, timing_cache: Path | None = None) -> EnginePlan:
    if precision not in FLAGS:
        raise ExportError(f"TensorRT precision must be one of {', '.join(FLAGS)}, got '{precision}'")
    if workspace_gb <= 0:
        raise ExportError(f"--workspace must be a positive number of GB, got {workspace_gb}")
    lo, opt, hi = batch.profile()
    if not 1 <= lo <= opt <= hi:
        raise ExportError(f"--dynamic-batch needs 1 <= MIN <= OPT <= MAX, got {lo},{opt},{hi}")
    shape = lambda b: (b, 3, img_size, img_size)  # noqa: E731
    return EnginePlan(str(onnx_path), str(engine_path), INPUT_NAME, shape(lo), shape(opt), shape(hi), FLAGS[precision],
                      int(workspace_gb * (1 << 30)), str(timing_cache or engine_path.with_name("tensorrt.timing.cache")))


def check_available() -> None:
    """Raise the one-line error naming the extra and the CUDA requirement when TensorRT cannot run here."""
    require("tensorrt", "tensorrt", "TensorRT engines (also needs an NVIDIA GPU with CUDA)")
    if not torch.cuda.is_available():
        raise ExportError("TensorRT needs an NVIDIA GPU with CUDA and none is visible here; "
                          "install with pip install 'edgedistill[tensorrt]' on a CUDA machine")


def build_engine(plan: EnginePlan) -> Path:
    """Parse the plan's ONNX, build and serialise the engine, and update the timing cache."""
    check_available()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(plan.onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected '{plan.onnx}': {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, plan.min_shape, plan.opt_shape, plan.max_shape)
    config.add_optimization_profile(profile)
    cache_path = Path(plan.timing_cache)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT could not build an engine (see the TensorRT log above)")
    atomic_write_bytes(plan.engine, bytes(serialized))
    atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return Path(plan.engine)
