"""``export --format timm``: the distilled backbone as a safetensors file with timm's own key names, the form
the ecosystem fine-tunes from::

    model = timm.create_model("mobilenetv3_large_100", num_classes=0, checkpoint_path="student-timm-fp32.safetensors")

``student.pt`` keeps the backbone under a ``backbone.`` prefix with the project's metadata; this file holds the
backbone's state dict alone (timm's ``load_checkpoint`` reads safetensors directly), plus the architecture name in
the safetensors header. It is built only for a student that *is* a stock timm architecture: the state dict must
match, key for key and shape for shape, ``timm.create_model(name, num_classes=0)`` (a torchvision student, or one
whose layers were replaced, such as ``resnet18_cifar``, is refused in one line). The parity gate then loads the
file exactly as a user would (export.backends.timm_backend) and compares its embeddings with the student's.
"""
from __future__ import annotations

from pathlib import Path

from export.errors import ExportError


def build(ctx, precision: str, base_onnx: Path, target: Path, work: Path) -> tuple[Path, dict]:
    import timm
    from safetensors.torch import save_file

    from distill.core.atomic import atomic_write_bytes

    if ctx.cfg.embedding != "backbone":
        raise ExportError("--format timm writes the backbone; drop --embedding head")
    student = ctx.student
    name = getattr(student, "name", None)
    if not name or name not in timm.list_models():
        raise ExportError(f"--format timm needs a timm student; '{name}' is not a timm architecture (export it "
                          "as onnx, or load student.pt's 'backbone.*' weights into your own model)")
    state = {k: v.detach().cpu().contiguous() for k, v in student.backbone.state_dict().items()}
    fresh = timm.create_model(name, pretrained=False, num_classes=0).state_dict()
    mismatch = sorted(set(state) ^ set(fresh)) or [k for k in state if tuple(state[k].shape) != tuple(fresh[k].shape)]
    if mismatch:
        raise ExportError(f"the student '{name}' is not timm's {name} layer for layer (first difference: "
                          f"'{mismatch[0]}'), so timm.create_model could not load it; export it as onnx")
    tmp = work / target.name
    save_file(state, str(tmp), metadata={"arch": name, "num_classes": "0", "format": "edgedistill.timm/1"})
    atomic_write_bytes(target, tmp.read_bytes())
    return target, {"arch": name, "load": f"timm.create_model('{name}', num_classes=0, checkpoint_path=FILE)"}
