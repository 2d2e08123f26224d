"""The standard benchmark's document helpers (the full suite is `make bench`)."""
from tools.bench_suite import parity_table, write_between_markers


def test_markers_replace_only_their_section(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\nprose before\n<!-- t:begin -->\nold table\n<!-- t:end -->\nprose after\n")
    write_between_markers(doc, "t", "new table\n")
    assert doc.read_text() == "# Title\n\nprose before\n<!-- t:begin -->\nnew table\n<!-- t:end -->\nprose after\n"
    write_between_markers(tmp_path / "fresh.md", "t", "x\n")
    assert "<!-- t:begin -->\nx\n<!-- t:end -->" in (tmp_path / "fresh.md").read_text()


def test_parity_table_has_a_row_per_artifact_with_its_status():
    parity = {"min_cosine": 0.999999, "mean_cosine": 1.0, "neighbour_overlap@10": 1.0, "max_abs": 1e-6, "p99_abs": 5e-7}
    sections = [{"student": "alexnet", "img_size": 32, "trained": True, "export": {"artifacts": [
        {"format": "onnx", "precision": "fp32", "status": "ok", "parity": parity, "size_bytes": 2_000_000},
        {"format": "openvino", "precision": "int8", "status": "parity_failed", "parity": {**parity, "min_cosine": 0.5},
         "float_quantizers": [3, 90]},
        {"format": "tensorrt", "precision": "fp16", "status": "export_failed", "parity": None}]}}]
    rows = [r for r in parity_table(sections, "cmd").splitlines() if r.startswith("| alexnet")]
    assert len(rows) == 3
    assert "✅ ok" in rows[0] and "| 2.0 |" in rows[0] and "0.999999" in rows[0]
    assert "❌ parity failed" in rows[1] and "0.500000" in rows[1] and "| 3 of 90 |" in rows[1]
    assert "❌ export_failed" in rows[2] and rows[2].count("| - ") >= 5


def test_the_suite_rewrites_the_docs_only_when_told():
    """A run of one student (``--students efficientnet_b0 --sizes 32``) must not replace the published tables."""
    from tools.bench_suite import SuiteConfig

    assert SuiteConfig().doc is None and SuiteConfig().export_doc is None
