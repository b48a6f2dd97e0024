"""export.run: an Exporter's export is all or nothing, and its parity results are typed records."""

import shutil

import pytest

pytest.importorskip("tensorflow", reason="export needs the train extra")

from export import common, run, validate  # noqa: E402
from export import onnx as onnx_export  # noqa: E402
from export import tflite as tflite_export  # noqa: E402
from runtime import backends, bundle  # noqa: E402
from tests.conftest import SHIPPED_BUNDLE  # noqa: E402


def test_each_format_has_an_exporter_named_by_the_backend_registry():
    assert onnx_export.EXPORTER.backend == "onnx" and tflite_export.exporter().backend == "tflite"
    assert {onnx_export.EXPORTER.backend, tflite_export.exporter().backend} == set(backends.BACKENDS)


def test_a_converter_that_fails_midway_leaves_the_bundle_as_it_was(tmp_path):
    folder = shutil.copytree(SHIPPED_BUNDLE, tmp_path / "bundle")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def write_artifacts(staging, manifest, config, trained, precisions):
        (staging / "model.onnx").write_bytes(b"half a model")
        raise common.ExportError("the converter failed")

    with pytest.raises(common.ExportError, match="the converter failed"):
        run.Exporter("onnx", write_artifacts).export(folder, parity_limit=None)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir()] == ["bundle"]  # no staging copy left beside it


def test_a_parity_result_is_recorded_as_the_manifest_reads_it():
    result = validate.ArtifactResult("ab" * 32, 1.5, {"reviews": 10, "max_abs_diff": 2e-5}, ())
    failed = validate.ArtifactResult("cd" * 32, 0.5, {"reviews": 10}, ("max diff 1e-3 vs atol 1e-4",))
    assert result.passed and not failed.passed
    record = result.record()
    assert record == bundle.ParityRecord.from_dict(record.to_dict()) and record.passed
    assert record.figures["max_abs_diff"] == 2e-5 and record.figures["seconds"] == 1.5
    assert list(failed.record().figures["failures"]) == ["max diff 1e-3 vs atol 1e-4"] and not failed.record().passed
