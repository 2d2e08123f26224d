"""A format module for tests/export/test_formats.py: the base ONNX copied under another suffix."""
import shutil


def build(ctx, precision, base_onnx, target, work):
    shutil.copyfile(base_onnx, target)
    return target, {"copied_from": "base.onnx"}


class WrongAtBatchOne:
    """A runtime that computes another result at batch 1 than batched (as OpenVINO 2026.4's CPU plugin did for a
    dynamic-batch int8 IR): the embedding's dimensions reversed for a one-image call."""

    def __new__(cls, path, device="cpu", threads=None):
        from export.backends.onnx_backend import OnnxRuntimeBackend

        class Backend(OnnxRuntimeBackend):
            def __call__(self, x):
                out = super().__call__(x)
                return out[:, ::-1].copy() if len(out) == 1 else out

        return Backend(path, device=device, threads=threads)
