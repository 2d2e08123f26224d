"""An int8 ONNX artifact with float-fallback nodes, before and after storing those nodes' weights in float
(``fold_float_weights`` below), beside the fp32 artifact of the same export (docs/EXPORT.md): identical outputs
and per-call latency at batch 1, interleaved rounds, onnxruntime on the CPU.

  python -m tools.experiments.fold_latency runs/gate/seed-mnv3-cifar/mobilenetv3_large_100-onnx-int8.onnx
"""
from __future__ import annotations

import sys
import time

from distill.core.cli import script, tool_parser

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def fold_float_weights(graph) -> None:
    """Give a weighted node whose activations all arrive in float its weights (and bias) in float too (tried in
    export.qdq on 2026-11-26 and not kept: 6-7 % faster, but the artifact doubles in size, docs/EXPORT.md).

    onnxruntime fuses DequantizeLinear -> Conv -> QuantizeLinear into one int8 kernel; a Conv whose input
    quantizer was bypassed cannot fuse, and its weights' DequantizeLinear then runs at every inference
    (onnxruntime does not constant-fold DequantizeLinear, to keep QDQ units intact). Storing the dequantized
    weights makes the node a plain float Conv: the same numbers, without the per-call dequantization."""
    import numpy as np
    from onnx import numpy_helper

    consts = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    activation_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in consts}
    added: dict[str, str] = {}
    for n in graph.node:
        if n.op_type not in WEIGHTED_OPS or any(i in activation_dq for i in n.input):
            continue
        for k, name in enumerate(n.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or not all(i in consts for i in dq.input if i):
                continue
            if name not in added:
                q = numpy_helper.to_array(consts[dq.input[0]]).astype(np.float32)
                scale = numpy_helper.to_array(consts[dq.input[1]]).astype(np.float32)
                zero = (numpy_helper.to_array(consts[dq.input[2]]).astype(np.float32) if len(dq.input) > 2 and dq.input[2]
                        else np.zeros_like(scale))
                if scale.ndim == 1 and scale.size > 1:  # per-channel: along the node's axis attribute (default 1)
                    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % q.ndim
                    shape = [1] * q.ndim
                    shape[axis] = scale.size
                    scale, zero = scale.reshape(shape), zero.reshape(shape)
                added[name] = f"{name}_float"
                graph.initializer.append(numpy_helper.from_array(((q - zero) * scale).astype(np.float32), added[name]))
            n.input[k] = added[name]


@script("tools.experiments.fold_latency")
def main(argv: list[str] | None = None) -> int:
    p = tool_parser("python -m tools.experiments.fold_latency", __doc__)
    p.add_argument("int8", help="an int8 ONNX artifact; its fp32 sibling is the same name with int8 -> fp32")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=400)
    args = p.parse_args(argv)
    import numpy as np
    import onnx

    from export.onnx_io import cpu_session
    from export.qdq import _prune

    mixed = onnx.load(args.int8)
    folded = onnx.ModelProto()
    folded.CopyFrom(mixed)
    fold_float_weights(folded.graph)
    _prune(folded.graph)
    graphs = {"fp32": onnx.load(args.int8.replace("int8", "fp32")), "int8": mixed, "int8 folded": folded}
    sessions = {name: cpu_session(g.SerializeToString()) for name, g in graphs.items()}
    size = sessions["fp32"].get_inputs()[0].shape[-1]
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    outs = {name: s.run(None, {"input": x})[0] for name, s in sessions.items()}
    print(f"max |int8 - int8 folded| = {float(np.abs(outs['int8'] - outs['int8 folded']).max())}")
    for r in range(args.rounds):
        for name, s in sessions.items():
            for _ in range(50):
                s.run(None, {"input": x})
            t = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                s.run(None, {"input": x})
                t.append(time.perf_counter() - t0)
            print(f"round {r}: {name}: p50 {1e3 * np.median(t):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
