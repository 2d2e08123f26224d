"""Activation quantizers of a QDQ ONNX graph (onnxruntime's static int8, TensorRT's explicit int8): measure
each one's error on real images and rewrite the graph with chosen ones left in float (export.fallback)."""
from __future__ import annotations

import numpy as np

from distill.core.pieces import chunks
from export.fallback import FallbackResult, find_float_set, rank_by_sqnr
from export.onnx_io import check_onnx, cpu_session, save_onnx


class QDQGraph:
    """An int8 QDQ ``onnx.ModelProto``; its activation quantizers are the QuantizeLinear -> DequantizeLinear
    pairs on non-constant tensors, each named by the float tensor it quantizes."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        g = model.graph
        consts = {t.name: t for t in g.initializer}
        dq_by_input = {n.input[0]: n for n in g.node if n.op_type == "DequantizeLinear"}
        self.pairs: dict[str, tuple[str, str]] = {}  # float tensor -> (its Q node's output, the DQ output)
        self.params: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # float tensor -> (scale, zero point)
        for n in g.node:
            if n.op_type == "QuantizeLinear" and n.input[0] not in consts and n.output[0] in dq_by_input:
                self.pairs[n.input[0]] = (n.output[0], dq_by_input[n.output[0]].output[0])
                self.params[n.input[0]] = (numpy_helper.to_array(consts[n.input[1]]),
                                           numpy_helper.to_array(consts[n.input[2]]))
        # onnxruntime calibrates the input of a Relu with the Relu's range [0, max]: that clipping is the Relu's,
        # not quantisation error, so such a tensor is measured against relu(x)
        readers: dict[str, set[str]] = {}
        for n in g.node:
            for i in n.input:
                readers.setdefault(i, set()).add(n.op_type)
        self.before_relu = {t for t, (_, dq) in self.pairs.items() if readers.get(dq) == {"Relu"}}

    @property
    def quantizers(self) -> list[str]:
        return list(self.pairs)

    @staticmethod
    def runner(model):
        """(B, 3, S, S) -> (B, D) with onnxruntime on the CPU, for judging a candidate graph."""
        session = cpu_session(model.SerializeToString())
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]

    def rank(self, images: np.ndarray, batch: int = 32, static: bool = False) -> list[tuple[str, float]]:
        """(quantizer, score in dB) worst first: the ``SCORE_PERCENTILE`` of per-image SQNR on ``images``.

        Each quantizer is measured in isolation, on the tensor it would see with every activation in float
        (weights int8): in the int8 graph an image already zeroed upstream would look exact downstream.
        """
        import onnx

        probe = self.with_float(self.quantizers)
        renamed = {o.name for o in probe.graph.output}
        names = {t: (self.pairs[t][1] if self.pairs[t][1] in renamed else t) for t in self.pairs}
        probe.graph.output.extend(onnx.ValueInfoProto(name=v) for v in names.values() if v not in renamed)
        session = cpu_session(probe.SerializeToString())
        outputs = [o.name for o in session.get_outputs()]
        input_name = session.get_inputs()[0].name

        def batches():
            for part, n in chunks(images, batch, static):
                values = dict(zip(outputs, session.run(None, {input_name: part})))
                pairs = {}
                for t in self.pairs:
                    x = values[names[t]][:n]
                    pairs[t] = (np.maximum(x, 0) if t in self.before_relu else x, fake_quantize(x, *self.params[t]))
                yield pairs

        return rank_by_sqnr(batches())

    def with_float(self, tensors: list[str]):
        """A copy of the model in which the consumers of each named tensor read it in float (its Q/DQ pair
        bypassed and, where nothing else reads it, removed)."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        outputs = {o.name for o in model.graph.output}
        swap = {self.pairs[t][1]: t for t in tensors if self.pairs[t][1] not in outputs}
        # a quantized graph output: the float tensor takes the output's name, so the DQ can go
        rename = {t: self.pairs[t][1] for t in tensors if self.pairs[t][1] in outputs}
        for n in model.graph.node:
            for i, name in enumerate(n.input):
                name = swap.get(name, name)  # a bypassed DQ's output -> the float tensor
                n.input[i] = rename.get(name, name)  # the float tensor -> the graph output's name
            if n.op_type == "DequantizeLinear" and n.output[0] in rename.values():
                n.output[0] = f"{n.output[0]}_bypassed"
            for i, name in enumerate(n.output):
                if name in rename:
                    n.output[i] = rename[name]
        _prune(model.graph)
        return model


def fake_quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """DequantizeLinear(QuantizeLinear(x)) for a per-tensor scale and a (u)int8 zero point."""
    info = np.iinfo(zero_point.dtype)
    q = np.clip(np.rint(x / scale) + zero_point.astype(np.int32), info.min, info.max)
    return ((q - zero_point.astype(np.int32)) * scale).astype(np.float32)


def _prune(graph) -> None:
    """Drop nodes whose outputs nobody reads, then initializers nobody reads."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def onnx_fallback(ctx, path) -> FallbackResult:
    """The float fallback of a QDQ int8 ONNX file (onnxruntime's int8, TensorRT's explicit int8), rewritten in place
    when quantizers are kept in float. ``ctx``: export.context.BuildContext."""
    import onnx

    graph = QDQGraph(onnx.load(str(path)))
    result = find_float_set(graph, ctx)
    if result.float_quantizers:
        save_onnx(graph.with_float(result.float_quantizers), path)
        check_onnx(path)
    return result
