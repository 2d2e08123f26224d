"""One OpenVINO IR compiled with its dynamic batch axis and reshaped to each batch size, the same CPU settings
(export.backends.openvino_backend.cpu_config), timed in interleaved rounds: why the backend compiles every input
shape static (docs/BENCHMARKS.md, "Static shapes"). ``--reference``: each form's accuracy against PyTorch on the
export's reference bundle instead (docs/EXPORT.md, "The smallest batch").

  python -m tools.experiments.openvino_static runs/phones/demo32/mobilenetv3_large_100-openvino-int8.xml \
      --batch-sizes 1,8
"""
from __future__ import annotations

import time

from distill.core.cli import positive_int, positive_ints, script, tool_parser
from distill.core.preprocess import Preprocess


def p50_ms(request, seconds: float) -> float:
    """Median of ``request.infer()`` over ``seconds`` after 50 warm-up calls (the input already set)."""
    import numpy as np

    for _ in range(50):
        request.infer()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        request.infer()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def against_reference(core, model, args) -> int:
    """Worst cosine of each form against the PyTorch embeddings of the export's reference bundle
    (export.reference), the bundle's images run in calls of each batch size: where a form computes another result."""
    from pathlib import Path

    from distill.core.embeddings import cosine_rows
    from distill.core.pieces import run_in_pieces
    from export.backends.openvino_backend import cpu_config, reshaped
    from export.metadata import read_metadata
    from export.reference import load_bundle

    xml = Path(args.xml)
    ref = load_bundle(xml.parent).reference(xml)
    x = Preprocess.from_dict(read_metadata(xml)["preprocess"]).numpy_from_uint8(ref.images)
    print(f"{xml}: {args.threads} threads; worst cosine against PyTorch over {len(x)} reference images")
    for bs in args.batch_sizes:
        found = {}
        for name, form in (("dynamic", model), ("static", reshaped(model, (bs, *x.shape[1:])))):
            compiled = core.compile_model(form, "CPU", cpu_config(args.threads))
            out = run_in_pieces(lambda a: compiled({0: a})[0], x, bs, True)
            found[name] = float(cosine_rows(ref.embeddings, out).min())
        print(f"batch {bs}: dynamic {found['dynamic']:.4f}  static {found['static']:.4f}")
    return 0


@script("tools.experiments.openvino_static")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.experiments.openvino_static", __doc__)
    p.add_argument("xml", help="an OpenVINO IR with a dynamic batch axis")
    p.add_argument("--batch-sizes", type=positive_ints, default=(1, 8))
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per model and round")
    p.add_argument("--reference", action="store_true",
                   help="instead of timing: each form's worst cosine against PyTorch on the export's reference "
                        "bundle beside the IR, the images run in calls of each batch size")
    args = p.parse_args(argv)
    import numpy as np
    import openvino as ov

    from export.backends.openvino_backend import cpu_config, reshaped

    core = ov.Core()
    model = core.read_model(args.xml)
    size = model.inputs[0].get_partial_shape()[-1].get_length()
    if args.reference:
        return against_reference(core, model, args)
    print(f"{args.xml}: {args.threads} threads, {args.rounds} rounds of {args.seconds} s; p50 ms")
    for bs in args.batch_sizes:
        x = np.random.default_rng(0).standard_normal((bs, 3, size, size)).astype(np.float32)
        forms = {"dynamic": model, "static": reshaped(model, x.shape)}
        times: dict[str, list[float]] = {name: [] for name in forms}
        outputs = {}
        for _ in range(args.rounds):
            for name, form in forms.items():
                # compiled afresh each round, one compiled model alive at a time
                request = core.compile_model(form, "CPU", cpu_config(args.threads)).create_infer_request()
                request.set_input_tensor(ov.Tensor(x, shared_memory=True))
                times[name].append(p50_ms(request, args.seconds))
                outputs[name] = request.get_output_tensor(0).data.copy()
                del request
        a, b = outputs["dynamic"], outputs["static"]
        agree = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
        d, s = float(np.median(times["dynamic"])), float(np.median(times["static"]))
        print(f"batch {bs}: dynamic {d:.3f}  static {s:.3f}  dynamic/static {d / s:.2f}  "
              f"(rounds: dynamic {', '.join(f'{t:.3f}' for t in times['dynamic'])}; "
              f"static {', '.join(f'{t:.3f}' for t in times['static'])}); worst cosine dynamic vs static {agree:.4f}")
    return 0


if __name__ == "__main__":
    main()
