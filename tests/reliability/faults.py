"""The fault table: for every command, inputs a user (or a crash, or a full disk) can hand it, and the one-line
error it must answer with. Each row names the command, the arguments (paths relative to the workspace copy), the
damage done to the copy first, and a phrase the error line must contain (case-insensitive)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Damage = Callable[[Path], None]


def truncate(rel: str, keep: float = 0.5) -> Damage:
    def damage(ws: Path) -> None:
        p = ws / rel
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * keep)])
    return damage


def scramble(rel: str) -> Damage:
    """Overwrite the middle third of a file with 0xFF bytes (a bad sector, a partial copy)."""
    def damage(ws: Path) -> None:
        p = ws / rel
        data = bytearray(p.read_bytes())
        n = len(data)
        data[n // 3: 2 * n // 3] = b"\xff" * (2 * n // 3 - n // 3)
        p.write_bytes(bytes(data))
    return damage


def write(rel: str, text: str) -> Damage:
    def damage(ws: Path) -> None:
        (ws / rel).write_text(text)
    return damage


def copy(src: str, dst: str) -> Damage:
    """A file under another kind's name (an ONNX file saved as .pt, TorchScript as .onnx)."""
    def damage(ws: Path) -> None:
        (ws / dst).write_bytes((ws / src).read_bytes())
    return damage


def drop_entry(rel: str, key: str) -> Damage:
    """A student.pt written by another tool or version: one entry of its dictionary missing."""
    def damage(ws: Path) -> None:
        import torch

        state = torch.load(ws / rel, weights_only=False)
        del state[key]
        torch.save(state, ws / rel)
    return damage


def delete(rel: str) -> Damage:
    def damage(ws: Path) -> None:
        (ws / rel).unlink()
    return damage


def mkdir(rel: str, *files: str) -> Damage:
    """A folder of a user's own, with files in it (what a destructive flag must not delete)."""
    def damage(ws: Path) -> None:
        (ws / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            (ws / rel / name).write_text(f"{name}: a user's file\n")
    return damage


@dataclass(frozen=True)
class Fault:
    id: str
    args: tuple[str, ...]  # after "edgedistill"; "{ws}" is replaced by the workspace copy
    needle: str  # the error line contains this (case-insensitive)
    damage: tuple[Damage, ...] = field(default=())
    code: int = 2

    @property
    def command(self) -> str:
        return self.args[0] if self.args[0] != "retrieve" else f"retrieve {self.args[1]}"


TEACHER = "{ws}/teacher.torchscript.pt"
TRAIN = ("train", "--student", "mobilenetv3_small_050", "--img-size", "32", "--batch-size", "8", "--max-steps", "1",
         "--queue-size", "64", "--workers", "0", "--device", "cpu")
PRETRAIN = ("pretrain", "--model", "mobilenetv3_small_050", "--img-size", "32", "--batch-size", "8", "--max-steps",
            "1", "--queue-size", "64", "--workers", "0", "--device", "cpu")
CACHE = ("cache-teacher", "--workers", "0", "--device", "cpu")
EVAL = ("eval", "--workers", "0", "--device", "cpu")
EXPORT = ("export", "--format", "onnx", "--precision", "fp32", "--parity-size", "8", "--timing-s", "0.1",
          "--workers", "0", "--device", "cpu")
BENCH = ("bench", "--batch-sizes", "1", "--min-time-s", "0.05", "--warmup-s", "0.01", "--rounds", "1", "--out", "{ws}/report")
ONNX = "{ws}/export/mobilenetv3_small_050-onnx-fp32.onnx"
OV_XML = "{ws}/export_ov/mobilenetv3_small_050-openvino-fp32.xml"

FAULTS: list[Fault] = [
    # train
    Fault("train-data-missing", (*TRAIN, "--data", "{ws}/nope", "--teacher", TEACHER, "--out", "{ws}/r"), "does not exist"),
    Fault("train-data-is-file", (*TRAIN, "--data", "{ws}/photo.png", "--teacher", TEACHER, "--out", "{ws}/r"), "not a folder"),
    Fault("train-data-empty", (*TRAIN, "--data", "{ws}/empty", "--teacher", TEACHER, "--out", "{ws}/r"), "no images"),
    Fault("train-teacher-missing", (*TRAIN, "--data", "{ws}/images", "--teacher", "{ws}/nope.onnx", "--out", "{ws}/r"), "nope.onnx"),
    Fault("train-teacher-is-image", (*TRAIN, "--data", "{ws}/images", "--teacher", "{ws}/photo.png", "--out", "{ws}/r"), "photo.png"),
    Fault("train-teacher-onnx-truncated", (*TRAIN, "--data", "{ws}/images", "--teacher", "{ws}/teacher.onnx", "--out", "{ws}/r"),
          "teacher.onnx", (truncate("teacher.onnx"),)),
    Fault("train-teacher-torchscript-truncated", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/r"),
          "teacher.torchscript.pt", (truncate("teacher.torchscript.pt"),)),
    Fault("train-teacher-onnx-named-pt", (*TRAIN, "--data", "{ws}/images", "--teacher", "{ws}/onnx.torchscript.pt",
                                          "--out", "{ws}/r"), "onnx.torchscript.pt",
          (copy("teacher.onnx", "onnx.torchscript.pt"),)),
    Fault("train-teacher-student-checkpoint", (*TRAIN, "--data", "{ws}/images", "--teacher", "{ws}/run/student.pt",
                                               "--out", "{ws}/r"), "student.pt"),
    Fault("train-resume-checkpoint-truncated", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/run",
                                                "--resume"), "checkpoint", (truncate("run/checkpoint.pt"),)),
    Fault("train-cache-truncated", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--teacher-cache", "{ws}/cache",
                                    "--out", "{ws}/r"), "cache", (truncate("cache/embeddings.npy"),)),
    Fault("train-cache-meta-corrupt", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--teacher-cache", "{ws}/cache",
                                       "--out", "{ws}/r"), "cache", (write("cache/meta.json", "{not json"),)),
    Fault("train-out-under-file", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/notes.txt/run"), "notes.txt"),
    Fault("train-out-is-file", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/notes.txt"),
          "is a file"),
    # --resume with options the run was not trained with: named and refused, never ignored or a state-dict trace
    Fault("train-resume-teacher-center-added", (*TRAIN, "--data", "{ws}/images", "--teacher", TEACHER, "--out",
                                                "{ws}/run", "--resume", "--teacher-center"), "--teacher-center False -> True"),
    Fault("train-resume-queue-size-changed", ("train", "--student", "mobilenetv3_small_050", "--img-size", "32",
                                              "--batch-size", "8", "--max-steps", "3", "--queue-size", "128",
                                              "--workers", "0", "--device", "cpu", "--data", "{ws}/images", "--teacher",
                                              TEACHER, "--out", "{ws}/run", "--resume"), "--queue-size 64 -> 128"),
    Fault("train-val-empty", (*TRAIN, "--data", "{ws}/images", "--val", "{ws}/empty", "--teacher", TEACHER, "--out", "{ws}/r"), "no images"),
    # pretrain
    Fault("pretrain-data-missing", (*PRETRAIN, "--data", "{ws}/nope", "--out", "{ws}/p"), "does not exist"),
    Fault("pretrain-data-empty", (*PRETRAIN, "--data", "{ws}/empty", "--out", "{ws}/p"), "no images"),
    Fault("pretrain-out-under-file", (*PRETRAIN, "--data", "{ws}/images", "--out", "{ws}/notes.txt/p"), "notes.txt"),
    # cache-teacher
    Fault("cache-data-missing", (*CACHE, "--data", "{ws}/nope", "--teacher", TEACHER, "--out", "{ws}/c"), "does not exist"),
    Fault("cache-teacher-is-text", (*CACHE, "--data", "{ws}/images", "--teacher", "{ws}/notes.txt", "--out", "{ws}/c"), "notes.txt"),
    Fault("cache-out-under-file", (*CACHE, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/notes.txt/c"), "notes.txt"),
    Fault("cache-out-exists", (*CACHE, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/cache"), "--overwrite"),
    # --overwrite replaces only what cache-teacher made: a training run and a user's own folder are refused, whole
    Fault("cache-overwrite-run-folder", (*CACHE, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/run",
                                         "--overwrite"), "not one (it holds checkpoint.pt"),
    Fault("cache-overwrite-user-folder", (*CACHE, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/notes",
                                          "--overwrite"), "not one (it holds ideas.md", (mkdir("notes", "ideas.md"),)),
    Fault("cache-overwrite-file", (*CACHE, "--data", "{ws}/images", "--teacher", TEACHER, "--out", "{ws}/notes.txt",
                                   "--overwrite"), "is a file"),
    # eval
    Fault("eval-student-truncated", (*EVAL, "--model", "{ws}/run/student.pt", "--train", "{ws}/images", "--val", "{ws}/queries"),
          "student.pt", (truncate("run/student.pt"),)),
    Fault("eval-model-is-image", (*EVAL, "--model", "{ws}/photo.png", "--train", "{ws}/images", "--val", "{ws}/queries"), "photo.png"),
    Fault("eval-onnx-scrambled", (*EVAL, "--model", "{ws}/model.onnx", "--train", "{ws}/images", "--val", "{ws}/queries"),
          "model.onnx", (scramble("model.onnx"),)),
    Fault("eval-torchscript-named-onnx", (*EVAL, "--model", "{ws}/ts.onnx", "--train", "{ws}/images", "--val",
                                          "{ws}/queries"), "ts.onnx", (copy("teacher.torchscript.pt", "ts.onnx"),)),
    # a foreign runtime's own error, at the boundary: a sidecar giving another input size than the ONNX file takes
    Fault("eval-onnx-sidecar-wrong-size", (*EVAL, "--model", "{ws}/teacher.onnx", "--train", "{ws}/images", "--val",
                                           "{ws}/queries"), "cannot run 'teacher.onnx'",
          (write("teacher.json", '{"input_size": [3, 48, 48]}'),)),
    Fault("eval-student-entry-missing", (*EVAL, "--model", "{ws}/run/student.pt", "--train", "{ws}/images", "--val",
                                         "{ws}/queries"), "student.pt", (drop_entry("run/student.pt", "state_dict"),)),
    Fault("eval-train-missing", (*EVAL, "--model", "{ws}/run", "--train", "{ws}/nope", "--val", "{ws}/queries"), "does not exist"),
    Fault("eval-val-empty", (*EVAL, "--model", "{ws}/run", "--train", "{ws}/images", "--val", "{ws}/empty"), "no images"),
    # export
    Fault("export-model-missing", (*EXPORT, "--model", "{ws}/nope", "--out", "{ws}/e"), "does not exist"),
    Fault("export-student-truncated", (*EXPORT, "--model", "{ws}/run/student.pt", "--out", "{ws}/e"), "student.pt",
          (truncate("run/student.pt"),)),
    Fault("export-model-is-onnx", (*EXPORT, "--model", "{ws}/model.onnx", "--out", "{ws}/e"), "model.onnx"),
    Fault("export-model-is-checkpoint", (*EXPORT, "--model", "{ws}/run/checkpoint.pt", "--out", "{ws}/e"), "checkpoint.pt"),
    Fault("export-out-under-file", (*EXPORT, "--model", "{ws}/run", "--out", "{ws}/notes.txt/e"), "notes.txt"),
    Fault("export-parity-empty", (*EXPORT, "--model", "{ws}/run", "--parity-data", "{ws}/empty", "--out", "{ws}/e"), "no images"),
    Fault("export-calib-missing", ("export", "--format", "onnx", "--precision", "int8", "--model", "{ws}/run", "--calib",
                                   "{ws}/nope", "--out", "{ws}/e", "--workers", "0"), "does not exist"),
    # bench
    Fault("bench-missing", (*BENCH, "{ws}/nope.onnx"), "nope.onnx"),
    Fault("bench-onnx-truncated", (*BENCH, ONNX), "onnx", (truncate("export/mobilenetv3_small_050-onnx-fp32.onnx"),)),
    Fault("bench-image", (*BENCH, "{ws}/photo.png"), "photo.png"),
    Fault("bench-engine-garbage", (*BENCH, "{ws}/model.engine"), "tensorrt", (write("model.engine", "garbage"),)),
    Fault("bench-data-missing", (*BENCH, "--data", "{ws}/nope", ONNX), "does not exist"),
    # retrieve index
    Fault("index-model-truncated", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out",
                                    "{ws}/i2", "--workers", "0"), "model.onnx", (truncate("model.onnx"),)),
    Fault("index-images-missing", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/nope", "--out",
                                   "{ws}/i2", "--workers", "0"), "does not exist"),
    Fault("index-out-under-file", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out",
                                   "{ws}/notes.txt/i", "--workers", "0"), "notes.txt"),
    Fault("index-out-is-file", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images", "--out",
                                "{ws}/notes.txt", "--workers", "0"), "is a file"),
    Fault("index-out-user-folder", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images",
                                    "--out", "{ws}/notes", "--workers", "0"), "is not an index",
          (mkdir("notes", "ideas.md"),)),
    Fault("index-nlist-over-data", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images",
                                    "--out", "{ws}/i2", "--index", "ivf", "--nlist", "1000", "--workers", "0"),
          "--nlist 1000 is more than"),
    Fault("index-add-manifest-corrupt", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images",
                                         "--out", "{ws}/index", "--add", "--workers", "0"), "manifest.json",
          (write("index/manifest.json", "{"),)),
    Fault("index-add-embeddings-truncated", ("retrieve", "index", "--model", "{ws}/model.onnx", "--images", "{ws}/images",
                                             "--out", "{ws}/index", "--add", "--workers", "0"), "embeddings.npy",
          (truncate("index/embeddings.npy"),)),
    # retrieve search
    Fault("search-index-truncated", ("retrieve", "search", "--index", "{ws}/index", "{ws}/photo.png"), "index.faiss",
          (truncate("index/index.faiss"),)),
    Fault("search-manifest-corrupt", ("retrieve", "search", "--index", "{ws}/index", "{ws}/photo.png"), "manifest.json",
          (write("index/manifest.json", "[1, 2"),)),
    Fault("search-paths-missing", ("retrieve", "search", "--index", "{ws}/index", "{ws}/photo.png"), "paths.json",
          (delete("index/paths.json"),)),
    Fault("search-index-missing", ("retrieve", "search", "--index", "{ws}/nope", "{ws}/photo.png"), "nope"),
    Fault("search-query-not-image", ("retrieve", "search", "--index", "{ws}/index", "{ws}/notes.txt"), "notes.txt"),
    Fault("search-model-gone", ("retrieve", "search", "--index", "{ws}/index", "{ws}/photo.png"), "model.onnx",
          (delete("model.onnx"),)),
    # retrieve serve (fails before it binds a port)
    Fault("serve-index-truncated", ("retrieve", "serve", "--index", "{ws}/index", "--port", "65001"), "index.faiss",
          (truncate("index/index.faiss"),)),
    Fault("serve-index-missing", ("retrieve", "serve", "--index", "{ws}/nope", "--port", "65001"), "nope"),
    # retrieve eval
    Fault("reval-queries-missing", ("retrieve", "eval", "--index", "{ws}/index", "--queries", "{ws}/nope", "--workers", "0"),
          "does not exist"),
    Fault("reval-embeddings-scrambled", ("retrieve", "eval", "--index", "{ws}/index", "--queries", "{ws}/queries",
                                         "--workers", "0"), "index", (truncate("index/index.faiss", 0.3),)),
]
