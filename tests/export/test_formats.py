"""The format table is the whole registry: one row and one module make a new format that export builds and
gates, load_backend loads and bench finds."""
import pytest

from export import ExportConfig, export_model, load_backend
from export.backends import backends, runtime_for, suffixes
from export.formats import FORMATS, Format

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

FAKE = Format("fakeonnx", (".fonnx",), ("fp32",), "fakeruntime", "export.backends.onnx_backend:OnnxRuntimeBackend",
              "tests.export.fake_format:build", "onnxruntime", None)


def test_suffixes_and_runtimes_come_from_the_table():
    assert suffixes()[".xml"] == "openvino" and suffixes()[".plan"] == "tensorrt" and suffixes()[".pt"] == "torch"
    assert set(backends()) == {"torch"} | {f.runtime for f in FORMATS.values()}


def test_a_new_row_and_module_are_enough_for_export_and_bench(student_ckpt, tmp_path, monkeypatch):
    from bench.runner import expand_targets

    monkeypatch.setitem(FORMATS, "fakeonnx", FAKE)
    report = export_model(ExportConfig(model=str(student_ckpt), formats=("fakeonnx",), precisions=("fp32",),
                                       parity_size=20, out=str(tmp_path), workers=0))
    (art,) = report["artifacts"]
    assert art["status"] == "ok" and art["path"].endswith("-fakeonnx-fp32.fonnx"), art
    assert runtime_for(art["path"]) == "fakeruntime"
    assert load_backend(art["path"]).embedding_dim == 512
    assert [p.name for p in expand_targets([str(tmp_path)])] == [art["path"].rsplit("/", 1)[1]]


def test_a_runtime_wrong_only_at_batch_one_fails_the_gate(student_ckpt, tmp_path, monkeypatch):
    from export.reference import check_backend, load_bundle

    wrong = Format("fakeonnx", (".fonnx",), ("fp32",), "fakeruntime", "tests.export.fake_format:WrongAtBatchOne",
                   "tests.export.fake_format:build", "onnxruntime", None)
    monkeypatch.setitem(FORMATS, "fakeonnx", wrong)
    report = export_model(ExportConfig(model=str(student_ckpt), formats=("fakeonnx",), precisions=("fp32",),
                                       parity_size=20, out=str(tmp_path), workers=0))
    (art,) = report["artifacts"]
    assert art["status"] == "parity_failed" and "at its smallest batch" in art["parity"]["reason"], art
    assert art["parity"]["min_cosine"] > 0.9999 and art["parity"]["smallest_batch_min_cosine"] < 0.9  # batched: fine
    assert art["parity"]["failed"] == ["smallest batch"]
    monkeypatch.setitem(FORMATS, "fakeonnx", FAKE)  # the same file through the right runtime passes
    assert export_model(ExportConfig(model=str(student_ckpt), formats=("fakeonnx",), precisions=("fp32",),
                                     parity_size=20, out=str(tmp_path / "ok"), workers=0))["artifacts"][0]["status"] == "ok"
    ok = load_backend(next((tmp_path / "ok").glob("*.fonnx")))
    result = check_backend(ok, load_bundle(tmp_path / "ok"))  # and on the target, the smallest batch is checked too
    assert result.passed and result.smallest_batch_min_cosine > 0.9999


def test_student_name_without_out_writes_under_runs(tmp_path):
    """From a checkout, `export --model student:NAME` used to write into ./export/NAME: the export package."""
    from tests.conftest import run_cli

    proc = run_cli("export", "--model", "student:resnet10t", "--img-size", "32", "--format", "onnx",
                   "--parity-size", "8", "--workers", "0", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "export" / "resnet10t" / "resnet10t-onnx-fp32.onnx").is_file()
    assert not (tmp_path / "export").exists()


def test_an_output_folder_that_cannot_be_created_is_one_line(tmp_path):
    from tests.conftest import run_cli

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("export", "--model", "student:resnet10t", "--img-size", "32", "--parity-size", "8",
                   "--workers", "0", "--out", str(blocker / "sub"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot create the output folder" in proc.stderr.strip().splitlines()[-1]
    assert blocker.read_text() == "not a folder"


def test_pick_never_chooses_a_slower_artifact_or_one_that_failed():
    from export.exporter import pick_fastest

    arts = [{"format": "onnx", "precision": "fp32", "status": "ok", "latency_ms": 0.76, "vs_fp32": None, "path": "a"},
            {"format": "onnx", "precision": "int8", "status": "ok", "latency_ms": 2.18, "vs_fp32": 0.35, "path": "b"},
            {"format": "openvino", "precision": "fp16", "status": "parity_failed", "latency_ms": None, "path": "c"},
            {"format": "openvino", "precision": "fp32", "status": "ok", "latency_ms": 0.70, "vs_fp32": None, "path": "d"}]
    picked = pick_fastest(arts)
    assert picked["path"] == "d" and picked["latency_ms"] == min(a["latency_ms"] for a in arts if a["latency_ms"])
    assert picked["int8_slower_than_fp32"] == ["onnx int8"] and len(picked["candidates"]) == 3
    assert pick_fastest([arts[2]]) is None


def test_format_auto_picks_the_faster_of_two_artifacts_with_a_fake_clock(student_ckpt, tmp_path, monkeypatch):
    """Latency comes from a fake clock: each backend call advances it by that artifact's planted cost."""
    import export.context as context_mod
    from distill.core import timing

    costs = {"fp32": 0.004, "fp16": 0.001}
    now = [0.0]

    def fake_measure(fn, warmup_s, min_time_s, min_runs):
        backend = next(c.cell_contents for c in fn.__closure__ if hasattr(c.cell_contents, "path"))
        precision = "fp16" if "fp16" in str(backend.path) else "fp32"
        clock = lambda: now[0]  # noqa: E731

        def call():
            now[0] += costs[precision]

        return timing.measure(call, warmup_s=warmup_s, min_time_s=min_time_s, min_runs=min_runs, clock=clock)

    monkeypatch.setattr(context_mod, "measure", fake_measure)  # BuildContext.time_p50 times every artifact
    report = export_model(ExportConfig(model=str(student_ckpt), formats=("onnx",), precisions=("fp32", "fp16"),
                                       parity_size=20, out=str(tmp_path), workers=0, pick=True))
    lat = {a["precision"]: a["latency_ms"] for a in report["artifacts"]}
    assert lat == pytest.approx({"fp32": 4.0, "fp16": 1.0})
    assert report["picked"]["precision"] == "fp16" and report["picked"]["latency_ms"] == pytest.approx(1.0)
    fp16 = next(a for a in report["artifacts"] if a["precision"] == "fp16")
    assert fp16["vs_fp32"] == pytest.approx(4.0)
