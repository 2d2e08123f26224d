"""``export --format executorch``: a ``.pte`` program for PyTorch's on-device runtime (ExecuTorch), its operators
delegated to XNNPACK, the CPU kernel library ExecuTorch uses on phones and ARM boards.

Follows ExecuTorch's own XNNPACK recipe: ``torch.export`` of the student, ``to_edge_transform_and_lower`` with
``XnnpackPartitioner``, ``to_executorch``. int8 is its PT2E flow: ``prepare_pt2e`` with the ``XNNPACKQuantizer``
(symmetric, per-channel weights), calibration on the same images as every other int8 build, ``convert_pt2e``, then
the same lowering. Where it deviates, and why:

- the example input is C-contiguous, and the backend makes every input so: a program remembers the memory layout
  of its example, and a channels-last array of the right shape runs without error and returns garbage;
- the batch axis is declared as the export's batch range (``--dynamic-batch`` min..max, or the static batch); the
  program's input is memory-planned for at most 15 images whatever the declared maximum (ExecuTorch 1.5.1,
  measured: a maximum of 16, 17 or 64 all plan 15), so the planned size is recorded (``planned_max_batch``) and the
  backend runs a larger batch in pieces of it: every batch of the declared range works (both ends tested);
- the student is exported from a copy in eval mode (BatchNorm folded by the lowering), never the training one.
"""
from __future__ import annotations

import copy
from pathlib import Path

from distill.core.errors import first_line
from export.errors import ExportError


def _export(model, example, batch):
    from torch.export import Dim, export

    if batch.static:
        return export(model, (example,))
    lo, _, hi = batch.profile()
    return export(model, (example,), dynamic_shapes={"x": {0: Dim("batch", min=lo, max=hi)}})


def build(ctx, precision: str, base_onnx: Path, target: Path, work: Path) -> tuple[Path, dict]:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from distill.core.atomic import atomic_write_bytes

    if precision not in ("fp32", "int8"):
        raise ExportError(f"executorch builds fp32 and int8 here, not {precision}")
    if ctx.student is None:
        raise ExportError("executorch is built from the PyTorch student; none was loaded")
    model = copy.deepcopy(ctx.student).eval()
    size = ctx.pre.input_size
    rows = ctx.batch.static or max(2, ctx.batch.profile()[0])  # torch.export specialises a batch of 1
    example = torch.zeros(rows, 3, size, size).contiguous()
    options: dict = {"delegate": "XNNPACK", "batch": ctx.batch.to_dict()}
    try:
        with torch.no_grad():
            program = _export(model, example, ctx.batch)
            if precision == "int8":
                program, options["calibration_images"] = _quantize(program, ctx, example, rows)
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    except ExportError:
        raise
    except Exception as exc:  # torch.export / the lowering: an operator it cannot take, a shape guard
        raise ExportError(f"ExecuTorch could not lower the student ({type(exc).__name__}: "
                          f"{first_line(exc)[:200]})") from None
    atomic_write_bytes(target, lowered.buffer)
    options["planned_max_batch"] = _planned_batch(target)
    return target, options


def _planned_batch(path: Path) -> int | None:
    """The largest batch the program's input is memory-planned for (its MethodMeta), None when unreadable."""
    from export.backends.executorch_backend import load_forward

    try:
        return load_forward(path)[1]
    except Exception:
        return None


def _quantize(program, ctx, example, rows):
    """PT2E int8 with the XNNPACK quantizer, calibrated on ``ctx.calibration()``; the re-exported program."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                           get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(program.module(), quantizer)
    calib = ctx.calibration()
    for start in range(0, len(calib), rows):
        part = calib[start:start + rows]
        if ctx.batch.static and len(part) < rows:
            break
        prepared(torch.from_numpy(part).contiguous())
    converted = convert_pt2e(prepared)
    return _export(converted, example, ctx.batch), int(len(calib))
