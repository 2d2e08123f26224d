"""Choosing an int8 calibrator: each in turn until one meets the fallback target, else the closest.

Shared by the ONNX (onnxruntime's MinMax / Percentile / Entropy calibrators) and OpenVINO (NNCF's min-max,
quantile and histogram range estimators) int8 builds; what a calibrator is and how a candidate is judged
(against PyTorch on the calibration images, ``tolerances.FALLBACK_TARGET``) comes from the caller.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from export.errors import ExportError
from export.parity import ParityResult


def choose_calibration(methods: Sequence[str], quantize: Callable[[str], Any],
                       judge: Callable[[Any], ParityResult] | None) -> tuple[Any, dict]:
    """``quantize(method)`` for each method in turn -> (the chosen candidate, its record).

    One method, or no ``judge``: the first that quantizes. Several: the first whose candidate passes ``judge``,
    else the one with the best (passed, worst-image cosine). A method whose quantisation raises ExportError (a
    histogram over a degenerate range, say) is recorded with its error and skipped, unless none is left. The
    record is ``{"method": chosen, "tried": [{method, passed, min_cosine, mean_cosine} | {method, error}]}``."""
    tried: list[dict] = []
    best: tuple[Any, ParityResult, str] | None = None
    for method in methods:
        try:
            candidate = quantize(method)
        except ExportError as exc:
            if len(methods) == 1 or (best is None and method == methods[-1]):
                raise
            tried.append({"method": method, "error": str(exc)})
            continue
        if len(methods) == 1 or judge is None:
            return candidate, {"method": method, "tried": tried}
        result = judge(candidate)
        tried.append({"method": method, "passed": result.passed, "min_cosine": round(result.min_cosine, 5),
                      "mean_cosine": round(result.mean_cosine, 5)})
        if best is None or (result.passed, result.min_cosine) > (best[1].passed, best[1].min_cosine):
            best = (candidate, result, method)
        if result.passed:
            break
    return best[0], {"method": best[2], "tried": tried}
