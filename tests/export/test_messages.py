"""What the training and export commands print (issue #34 item 9): no TensorFlow start-up lines
unless --verbose, and an export's last line says what it wrote and where."""

import subprocess
import sys
from pathlib import Path

import pytest

from export import common, onnx, tflite
from runtime import bundle

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "imdb-lstm"

pytest.importorskip("tensorflow", reason="the train extra")


def test_loading_tensorflow_after_quiet_prints_nothing():
    """TensorFlow 2.21 wrote absl's 'All log messages before absl::InitializeLog()' and oneDNN's
    line on import despite TF_CPP_MIN_LOG_LEVEL."""
    code = "from training.quiet import quiet; quiet(); import tensorflow, keras; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("module, backend", [(tflite, "tflite"), (onnx, "onnx")])
def test_an_export_ends_with_what_it_wrote_and_where(module, backend, monkeypatch, capsys, tmp_path):
    manifest = bundle.Manifest.read(SHIPPED)
    monkeypatch.setattr(module, f"export_{backend}", lambda *args, **kwargs: manifest)
    monkeypatch.setattr(common, "quiet", lambda verbose=False: None)
    assert module.main(["--model", str(tmp_path), "--precision", "int8"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"wrote {tmp_path}/: ") and f"model.int8.{backend}" in last
    assert f"model.{backend}" not in last.split(": ", 1)[1].split(", ")  # float32 was not asked for
