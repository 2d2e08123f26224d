"""int8 with float fallback: keep the most sensitive activation quantizers in float until int8 meets the gate.

Static int8 gives each activation tensor one scale for all images. Where a tensor's magnitude varies by orders
of magnitude between images (late layers of an untrained MobileNetV3 at 224 px), the small images round to the
zero point and their embeddings collapse. TensorRT's layer precision fallback and NNCF's accuracy control answer
this by leaving some layers in float; this module does it for every runtime, with the parity gate as criterion:

1. rank the activation quantizers by their own error, each measured in isolation (every other activation in
   float): per image, the signal-to-quantisation-noise ratio ``10 log10(|x|^2 / |x - dq(q(x))|^2)`` of the
   tensor, and a quantizer's score is a low percentile of it over the calibration images (an average would
   hide the images that collapse);
2. keep the worst k in float, k = 1, 2, 4, ... up to a cap, until ``tolerances.FALLBACK_TARGET`` (a margin
   above the gate) is met on the calibration images (the gate then runs on the separate parity images), and
   bisect back to the smallest k that meets it.

The runtime-specific parts (measuring, rewriting the graph) live in ``export.qdq`` (ONNX QDQ, also the input of
TensorRT's explicit quantisation) and ``export.openvino_export`` (NNCF FakeQuantize).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from distill.core.log import log
from export.parity import ParityResult

SCORE_PERCENTILE = 10  # a quantizer's score: this percentile of its per-image SQNR (dB)
MIXED_WARNING = 0.25  # above this fraction of quantizers in float, say that int8 may be slower than fp32


class QuantGraph(Protocol):
    """What a runtime's int8 graph offers the search (export.qdq.QDQGraph, export.openvino_export.FakeQuantizeGraph)."""

    model: Any  # the int8 model as the runtime holds it

    @property
    def quantizers(self) -> list[str]:
        """The activation quantizers' names, in graph order."""

    def with_float(self, names: list[str]) -> Any:
        """A copy of the model with the named quantizers bypassed (those activations stay in float)."""

    @staticmethod
    def runner(model: Any) -> Callable:
        """(B, 3, S, S) -> (B, D) of a model, on the CPU."""

    def rank(self, images, batch: int = 32, static: bool = False) -> list[tuple[str, float]]:
        """(quantizer, SQNR score dB) worst first, each measured in isolation (rank_by_sqnr)."""


def per_image_sqnr(x: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """SQNR in dB of each image's tensor ``x`` (N, ...) against its quantised version ``xq``; +inf where exact."""
    x = x.reshape(len(x), -1).astype(np.float64)
    err = ((x - xq.reshape(len(xq), -1).astype(np.float64)) ** 2).sum(1)
    sig = (x ** 2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(sig / err)
    db[err == 0] = np.inf
    db[(err > 0) & (sig == 0)] = -np.inf
    return db


def score(sqnr_db: np.ndarray) -> float:
    return float(np.percentile(sqnr_db, SCORE_PERCENTILE))


def rank_by_sqnr(batches: Iterable[dict[str, tuple[np.ndarray, np.ndarray]]]) -> list[tuple[str, float]]:
    """(quantizer, score in dB) worst first, from batches of ``{quantizer: (reference, quantized tensor)}``."""
    sqnr: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for name, (reference, quantized) in batch.items():
            sqnr.setdefault(name, []).append(per_image_sqnr(reference, quantized))
    return sorted(((name, score(np.concatenate(v))) for name, v in sqnr.items()), key=lambda ns: ns[1])


@dataclass
class FallbackResult:
    """What the search did: the quantizers left in float (worst first) and each trial's gate figures."""

    float_quantizers: list[str]
    total_quantizers: int
    passed: bool
    trials: list[dict] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)  # (quantizer, SQNR score dB), worst first
    regions: dict = field(default_factory=dict)  # the contiguous-regions trial: added, ms before/after, kept

    def sensitivity_csv(self) -> str:
        """The ranking as CSV: ``rank,quantizer,sqnr_db_p10,kept_in_float`` (worst first)."""
        kept = set(self.float_quantizers)
        rows = ["rank,quantizer,sqnr_db_p10,kept_in_float"]
        rows += [f"{i},{name},{score:.4f},{int(name in kept)}" for i, (name, score) in enumerate(self.ranking, 1)]
        return "\n".join(rows) + "\n"

    def to_dict(self) -> dict:
        return asdict(self)


def search(ranked: Sequence[str], evaluate: Callable[[list[str]], ParityResult], max_float: int,
           first: ParityResult) -> FallbackResult:
    """Smallest k (doubling, then bisection) such that keeping ``ranked[:k]`` in float passes ``evaluate``.

    ``first`` is the gate result of the plain int8 model (k = 0). Returns ``passed=False`` with the largest k
    tried when even ``max_float`` quantizers in float do not pass.
    """
    trials = [_trial(0, first)]
    if first.passed or max_float <= 0 or not ranked:
        return FallbackResult([], len(ranked), first.passed, trials)
    cap = min(max_float, len(ranked))
    lo, hi, k = 0, None, 1
    while hi is None:
        result = evaluate(list(ranked[:k]))
        trials.append(_trial(k, result))
        if result.passed:
            hi = k
        elif k == cap:
            return FallbackResult(list(ranked[:k]), len(ranked), False, trials)
        else:
            lo, k = k, min(2 * k, cap)
    while hi - lo > 1:  # the gate is close to monotone in k: find the smallest passing k
        mid = (lo + hi) // 2
        result = evaluate(list(ranked[:mid]))
        trials.append(_trial(mid, result))
        lo, hi = (lo, mid) if result.passed else (mid, hi)
    return FallbackResult(list(ranked[:hi]), len(ranked), True, trials)


def fill_gaps(order: Sequence[str], chosen: Iterable[str], gap: int = 1) -> list[str]:
    """Every run of at most ``gap`` quantizers that sits, in graph order ``order``, between two ``chosen`` ones
    (graph order): an int8 island inside a float region costs a quantize and a dequantize at each end and rarely
    pays for them. ``chosen`` itself is not changed."""
    picked = set(chosen)
    flags = [name in picked for name in order]
    added: list[str] = []
    last = None  # index of the last chosen quantizer seen
    for i, is_float in enumerate(flags):
        if not is_float:
            continue
        if last is not None and 0 < i - last - 1 <= gap:
            added += [order[j] for j in range(last + 1, i)]
        last = i
    return added


def _trial(k: int, r: ParityResult) -> dict:
    return {"float": k, "passed": r.passed, "min_cosine": round(r.min_cosine, 6),
            "mean_cosine": round(r.mean_cosine, 6), "neighbour_overlap@10": round(r.neighbour_overlap, 4)}


def find_float_set(graph: QuantGraph, ctx) -> FallbackResult:
    """Judge the int8 graph on the calibration images against PyTorch (``ctx.judge_int8``, export.context); if it
    misses ``FALLBACK_TARGET`` (a margin above the gate), search for the fewest activation quantizers to keep in
    float (at most ``ctx.cfg.int8_fallback`` of them), then try filling the one-quantizer int8 gaps between them."""
    calib = ctx.calibration()

    def judge(model):
        return ctx.judge_int8(graph.runner(model))

    first = judge(graph.model)
    limit = int(ctx.cfg.int8_fallback * len(graph.quantizers))
    if first.passed or limit <= 0:
        return search(graph.quantizers, judge, 0, first)
    log.info(f"int8 misses the fallback target on the calibration images ({first.reason}); looking for up to {limit} "
             f"of {len(graph.quantizers)} activation quantizers to keep in float")
    ranking = graph.rank(calib, ctx.batch.static or 32, ctx.batch.static is not None)
    result = search([name for name, _ in ranking], lambda names: judge(graph.with_float(names)), limit, first)
    result.ranking = [(name, float(score)) for name, score in ranking]
    if result.passed and result.float_quantizers:
        _contiguous_regions(graph, result, judge, ctx)
    if len(result.float_quantizers) > MIXED_WARNING * len(graph.quantizers):
        log.warning(f"note: int8 keeps {len(result.float_quantizers)} of {len(graph.quantizers)} activation "
                    "quantizers in float; a graph this mixed can run slower than fp32 (docs/EXPORT.md): compare "
                    "them with `edgedistill bench` before deploying it")
    return result


def _contiguous_regions(graph: QuantGraph, result: FallbackResult, judge, ctx) -> None:
    """Try the float set with its one-quantizer int8 gaps filled (:func:`fill_gaps`); keep it when it still meets
    the target and runs faster at batch 1 (both timed, ``ctx.cfg.timing_s`` each)."""
    added = fill_gaps(graph.quantizers, result.float_quantizers)
    if not added or ctx.cfg.timing_s <= 0:
        return
    filled = result.float_quantizers + added
    filled_model = graph.with_float(filled)
    candidate = judge(filled_model)
    calib = ctx.calibration()
    before = ctx.time_p50(graph.runner(graph.with_float(result.float_quantizers)), calib)
    after = ctx.time_p50(graph.runner(filled_model), calib) if candidate.passed else None
    kept = after is not None and after < before
    result.regions = {"added": len(added), "passed": candidate.passed, "p50_ms_before": round(before, 4),
                      "p50_ms_after": None if after is None else round(after, 4), "kept": kept}
    if kept:
        result.float_quantizers = filled
