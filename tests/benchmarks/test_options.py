"""The options table's benchmark on the shipped bundle and a small attention model: it reads each
run's row, measures every path round-robin, and renders; no timing is asserted."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow", reason="the benchmark reads each bundle's Keras model (the train extra)")

from benchmarks import options  # noqa: E402
from export import onnx as onnx_export  # noqa: E402
from export import tflite as tflite_export  # noqa: E402
from runtime import backends, bundle  # noqa: E402
from tests.conftest import ROOT, SHIPPED_BUNDLE, require_shared_archive, write_archive  # noqa: E402
from training import fit  # noqa: E402


@pytest.fixture(scope="module")
def attention_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attention")
    archive = write_archive(folder / "small.tar.gz", per_folder=40)
    output = folder / "bundle"
    small = ["--lstm-units", "8", "--embedding-dim", "16", "--sequence-length", "200", "--word2vec-epochs", "0"]
    argv = ["--data", str(archive), "--output", str(output), "--epochs", "1", "--limit", "60", "--quiet", "--attention"]
    assert fit.main(argv + small) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_DATA", str(archive))
        assert tflite_export.main(["--model", str(output), "--parity-limit", "20"]) == 0
        assert onnx_export.main(["--model", str(output), "--parity-limit", "20"]) == 0
    return output


def test_measures_every_bundle_and_renders(attention_bundle, shared_test_set):
    named = [("seed", SHIPPED_BUNDLE), ("attention", attention_bundle)]
    results = json.loads(json.dumps(options.run(named, shared_test_set, rounds=2)))  # as options.json holds it
    expected_paths = {options.path_name(b, p) for b in backends.available_backends() for p in bundle.PRECISIONS}
    for (name, folder), model in zip(named, results["models"]):
        manifest = bundle.Manifest.read(folder)
        assert model["name"] == name and set(model["paths"]) == expected_paths
        assert model["row"]["test_accuracy"] == round(manifest.metrics.test_accuracy, 4)
        assert 0 <= model["row"]["challenge_accuracy"] <= 1
        for path in model["paths"].values():
            assert path["latency"]["calls"] == 2 * options.bench.REVIEWS_PER_BLOCK
            assert path["artifact_bytes"] > 0
    text = options.table(results)
    assert "| seed |" in text and "| attention |" in text and "(1.0x)" in text
    assert "--attention" in text.splitlines()[-1] and "--attention" not in text.splitlines()[-2]


def test_a_bundle_is_named_on_the_command_line():
    with pytest.raises(SystemExit):
        options.main(["runs/some-bundle"])  # NAME=BUNDLE expected: argparse's usage error, exit 2


def test_the_command_in_a_fresh_process(attention_bundle, tmp_path):
    """A new process has not imported training: the attention model's own layer must still load."""
    output = tmp_path / "options.json"
    command = [sys.executable, "-m", "benchmarks.options", "--data", str(require_shared_archive())]
    command += [f"attention={attention_bundle}", "--output", str(output)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "| attention |" in finished.stdout
    assert json.loads(output.read_text())["models"][0]["row"]["challenge_accuracy"] is not None
