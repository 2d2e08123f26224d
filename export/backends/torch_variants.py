"""How ``bench --torch`` may run a PyTorch student: the one list of variant names (torch-free, for the CLI).

A variant's name is a mode, optionally followed by a half precision: ``eager`` (the reference row),
``eager-fp16``, ``compiled-bf16``, ``cudagraphs``, ``cudagraphs-fp16``. The modes are ``torch.compile``'s own:
``compiled`` is inductor's default mode; ``cudagraphs`` is ``mode="reduce-overhead"``, inductor's kernels replayed
as CUDA graphs, which takes away the per-kernel launch cost that dominates a small network at batch 1 on a GPU.
"""
from __future__ import annotations

from distill.core.errors import ConfigError

# mode -> torch.compile keyword arguments (None: eager)
TORCH_MODES: dict[str, dict | None] = {"eager": None, "compiled": {}, "cudagraphs": {"mode": "reduce-overhead"}}
PRECISIONS = ("fp32", "fp16", "bf16")
CUDA_ONLY_MODES = ("cudagraphs",)


def torch_variants() -> list[str]:
    """Every valid variant name: each mode alone (fp32) and with each half precision."""
    return [m if p == "fp32" else f"{m}-{p}" for m in TORCH_MODES for p in PRECISIONS]


def parse_variant(name: str, device: str = "cpu") -> tuple[str, str]:
    """'cudagraphs-fp16' -> ('cudagraphs', 'fp16'). An unknown name, or a CUDA-only mode on the CPU, is a
    ConfigError naming the fix."""
    if name not in torch_variants():
        raise ConfigError(f"unknown PyTorch variant '{name}'; choose from {', '.join(torch_variants())}")
    mode, _, precision = name.partition("-")
    if mode in CUDA_ONLY_MODES and not device.startswith("cuda"):
        raise ConfigError(f"PyTorch variant '{name}' replays CUDA graphs, so it needs --device cuda; on the CPU "
                          "use 'compiled'")
    return mode, precision or "fp32"
