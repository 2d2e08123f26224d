"""A format module for tests/export/test_formats.py: the base ONNX copied under another suffix."""
import shutil


def build(ctx, precision, base_onnx, target, work):
    shutil.copyfile(base_onnx, target)
    return target, {"copied_from": "base.onnx"}
