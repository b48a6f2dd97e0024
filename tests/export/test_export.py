"""Export of a quickly trained model: artifacts, their structure, parity on real reviews, and errors."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="needs the export extra")

import onnx  # noqa: E402

from export import common, parity  # noqa: E402
from export import onnx as onnx_export  # noqa: E402
from export import tflite as tflite_export  # noqa: E402
from runtime import bundle  # noqa: E402
from tests.conftest import ROOT, SHARED_ARCHIVE, SHIPPED_BUNDLE, require_shared_archive, write_archive  # noqa: E402
from training import fit  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A model trained for one epoch on synthetic reviews, exported to all eight artifacts, with
    the exporters' own parity check run on real test reviews when the dataset is present."""
    folder = tmp_path_factory.mktemp("export")
    archive = write_archive(folder / "small.tar.gz", per_folder=60)
    output = folder / "bundle"
    assert fit.main(["--data", str(archive), "--output", str(output), "--epochs", "1", "--quiet"]) == 0
    data_source = SHARED_ARCHIVE if SHARED_ARCHIVE.is_file() else archive
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_DATA", str(data_source))
        assert tflite_export.main(["--model", str(output), "--parity-limit", "150"]) == 0
        assert onnx_export.main(["--model", str(output), "--parity-limit", "150"]) == 0
    return output


def artifact_path(folder, backend, graph, precision):
    return folder / bundle.artifact_filename(backend, graph, precision)


def test_every_artifact_is_in_the_manifest_with_its_sha256(exported):
    manifest = bundle.read_manifest(exported)
    for backend in ("tflite", "onnx"):
        for graph in bundle.GRAPHS:
            for precision in bundle.PRECISIONS:
                record = manifest["artifacts"][bundle.artifact_key(backend, graph, precision)]
                assert bundle.verify_file(exported, record) == artifact_path(exported, backend, graph, precision)
                assert record["vocabulary_sha256"] == manifest["tokenizer"]["vocabulary"]["sha256"]
    bundle.verify_file(exported, manifest["padding_states"])


def test_exporters_recorded_passing_parity_on_real_reviews(exported):
    require_shared_archive()
    results = bundle.read_manifest(exported)["parity"]
    assert len(results) == 12  # eight artifacts that classify, four per-step ones (explain)
    for key, result in results.items():
        assert result["passed"], (key, result["failures"])
        assert result["reviews"] == 150
        if key.endswith("float32"):
            assert result["max_abs_diff"] <= parity.FLOAT_ATOL


def tflite_operators(path) -> str:
    import contextlib
    import io

    import tensorflow as tf

    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_path=str(path))
    return report.getvalue()


@pytest.mark.parametrize("graph", bundle.GRAPHS)
@pytest.mark.parametrize("precision", bundle.PRECISIONS)
def test_tflite_has_builtin_operators_only(exported, graph, precision):
    report = tflite_operators(artifact_path(exported, "tflite", graph, precision))
    assert "WHILE" in report and "GATHER" in report
    assert "Flex" not in report and "CUSTOM" not in report


@pytest.mark.parametrize("graph", bundle.GRAPHS)
def test_onnx_graph_has_one_lstm_node_and_declared_io(exported, graph):
    model = onnx.load(str(artifact_path(exported, "onnx", graph, "float32")))
    onnx.checker.check_model(model, full_check=True)
    assert onnx_export.lstm_node_count(model) == {"LSTM": 1, "DynamicQuantizeLSTM": 0, "Loop": 0, "Scan": 0}
    assert model.opset_import[0].version >= 17
    inputs = {value.name: value.type.tensor_type for value in model.graph.input}
    expected = {"token_ids": onnx.TensorProto.INT32} | (
        {"h0": onnx.TensorProto.FLOAT, "c0": onnx.TensorProto.FLOAT} if graph == "cached" else {}
    )
    assert {name: tensor.elem_type for name, tensor in inputs.items()} == expected
    shapes = {name: [dim.dim_param or dim.dim_value for dim in tensor.shape.dim] for name, tensor in inputs.items()}
    if graph == "cached":  # one review, in the LSTM node's own shapes: no node reshapes it
        assert shapes == {"token_ids": ["length", 1], "h0": [1, 1, 100], "c0": [1, 1, 100]}
    else:
        assert shapes["token_ids"][1] == 500 and isinstance(shapes["token_ids"][0], str)  # a dynamic batch
    (output,) = model.graph.output
    assert output.name == "probabilities" and output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    quantized = onnx.load(str(artifact_path(exported, "onnx", graph, "int8")))
    assert onnx_export.lstm_node_count(quantized)["DynamicQuantizeLSTM"] == 1


@pytest.mark.parametrize("backend", bundle.BACKENDS)
@pytest.mark.parametrize("graph", bundle.GRAPHS)
@pytest.mark.parametrize("precision", bundle.PRECISIONS)
def test_every_artifact_carries_its_fingerprint(exported, backend, graph, precision):
    """Finding 6: the model file itself says which vocabulary, labels and length it was made for."""
    from runtime import backends

    content = artifact_path(exported, backend, graph, precision).read_bytes()
    if backend == "tflite":
        metadata = backends.tflite_metadata(content)
    else:
        metadata = {prop.key: prop.value.encode() for prop in onnx.load_from_string(content).metadata_props}
    manifest = bundle.read_manifest(exported)
    assert backends.fingerprint_of(metadata) == {
        "vocabulary_sha256": manifest["tokenizer"]["vocabulary"]["sha256"],
        "labels": ["negative", "positive"],
        "graph": graph,
        "sequence_length": 500,
        "inputs": ["token_ids", "h0", "c0"] if graph == "cached" else ["token_ids"],
        "outputs": ["probabilities"],
    }


@pytest.mark.parametrize("graph", bundle.GRAPHS)
def test_onnx_graph_is_only_the_layers_own_nodes(exported, graph):
    """No index normalisation before the embedding, no slicing after the LSTM, a float Dense."""
    batch_major = ["Transpose"] if graph == "full" else []
    layers = [*batch_major, "Gather", "LSTM", "Squeeze", "MatMul", "Add", "Softmax"]
    model = onnx.load(str(artifact_path(exported, "onnx", graph, "float32")))
    assert sorted(node.op_type for node in model.graph.node) == sorted(layers)
    quantized = onnx.load(str(artifact_path(exported, "onnx", graph, "int8")))
    int8_layers = [op for op in layers if op != "LSTM"] + ["DequantizeLinear", "DynamicQuantizeLSTM"]
    assert sorted(node.op_type for node in quantized.graph.node) == sorted(int8_layers)


def test_simplify_refuses_a_graph_of_another_shape():
    from onnx import TensorProto, helper

    proto = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["token_ids"], ["probabilities"])],
            "other",
            [helper.make_tensor_value_info("token_ids", TensorProto.FLOAT, [1, 3])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 3])],
        )
    )
    with pytest.raises(common.ExportError, match="one embedding Gather"):
        onnx_export.simplify(proto)


@pytest.mark.parametrize("backend", ["tflite", "onnx"])
@pytest.mark.parametrize("graph", bundle.GRAPHS)
def test_int8_is_smaller_than_a_third_of_float(exported, backend, graph):
    float_size = artifact_path(exported, backend, graph, "float32").stat().st_size
    assert artifact_path(exported, backend, graph, "int8").stat().st_size < float_size / 3


def test_padding_states_reach_a_fixed_point(exported):
    states = np.load(exported / bundle.PADDING_STATES_NAME)
    assert states.shape[1:] == (2, 100) and not states[0].any()
    assert 1 < len(states) <= 500


def test_fused_form_is_one_lstm_operator_on_the_cached_graph_with_parity(exported, tmp_path):
    """`--form fused` (Keras 2 layers) gives the cached graph one UNIDIRECTIONAL_SEQUENCE_LSTM,
    keeps the full graph a WHILE loop, and passes parity on real reviews."""
    pytest.importorskip("tf_keras", reason=f"the fused form needs tf-keras: {tflite_export.TF_KERAS_INSTALL}")
    require_shared_archive()
    folder = tmp_path / "fused"
    shutil.copytree(exported, folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMDB_DATA", str(SHARED_ARCHIVE))
        assert tflite_export.main(["--model", str(folder), "--form", "fused", "--parity-limit", "150"]) == 0
    manifest = bundle.read_manifest(folder)
    for precision in bundle.PRECISIONS:
        cached = tflite_operators(artifact_path(folder, "tflite", "cached", precision))
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in cached and "WHILE" not in cached
        assert "WHILE" in tflite_operators(artifact_path(folder, "tflite", "full", precision))
        assert manifest["artifacts"][bundle.artifact_key("tflite", "cached", precision)]["form"] == "fused"
        result = manifest["parity"][bundle.artifact_key("tflite", "cached", precision)]
        assert result["passed"] and result["reviews"] == 150, result


def test_fused_form_without_tf_keras_is_a_clear_error(exported, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # import fails as if absent
    assert tflite_export.main(["--model", str(exported), "--form", "fused"]) == 1
    assert "pip install --no-deps 'tf-keras" in capsys.readouterr().err


@pytest.mark.parametrize("flipped, passed", [(10, True), (11, False)])
def test_int8_accuracy_drop_is_allowed_up_to_half_a_point_exactly(flipped, passed):
    """On 2,000 texts, half a point is ten: losing ten passes, losing eleven (and gaining none) fails."""
    labels = np.ones(2000, dtype=np.int64)
    keras_probs = np.tile([0.2, 0.8], (2000, 1))
    probs = keras_probs.copy()
    probs[:flipped] = [0.8, 0.2]
    result = parity.compare(keras_probs, probs, labels, "int8")
    assert (not any("loses more than" in failure for failure in result["failures"])) is passed


def int8_result(texts: int, lost: int, gained: int = 0, changed: int | None = None) -> dict:
    """compare() of an int8 artifact on `texts` texts Keras answers right but for `gained` of them,
    which loses `lost` texts, wins `gained` back, and changes `changed` labels in all (3 labels)."""
    labels = np.zeros(texts, dtype=np.int64)
    keras_probs = np.tile([0.8, 0.15, 0.05], (texts, 1))
    keras_probs[texts - gained :] = [0.15, 0.8, 0.05]  # Keras wrong ...
    probs = keras_probs.copy()
    probs[texts - gained :] = [0.8, 0.15, 0.05]  # ... and int8 right
    probs[:lost] = [0.15, 0.8, 0.05]  # Keras right, int8 wrong
    extra = (changed or lost + gained) - lost - gained  # wrong answers changed into other wrong answers
    keras_probs[lost : lost + extra], probs[lost : lost + extra] = [0.15, 0.8, 0.05], [0.15, 0.05, 0.8]
    return parity.compare(keras_probs, probs, labels, "int8")


def test_the_int8_gate_accounts_for_few_texts():
    """600 rows, 120 test texts: one flipped label lost 0.83 points and two made agreement 98.3 %,
    and the whole export was refused. Chance explains those; a broken artifact is still caught."""
    assert int8_result(120, lost=1)["failures"] == []
    assert int8_result(120, lost=2)["failures"] == []  # 98.33 % agreement, 1.67 points
    assert int8_result(120, lost=3)["failures"] == []
    broken = int8_result(120, lost=12)
    assert [failure.split(" ")[0] for failure in broken["failures"]] == ["label", "accuracy"], broken
    assert "12 of 120 labels differ from Keras, at most 3 may" in broken["failures"][0]
    # Many changes that cost no accuracy fail on agreement only.
    assert [f.split(" ")[0] for f in int8_result(120, lost=3, gained=3, changed=8)["failures"]] == ["label"]
    # Losing 5 of 5 texts it answers differently is significant (p = 1/32), 4 of 4 is not (p = 1/16).
    assert int8_result(400, lost=4)["failures"] == []
    assert any("McNemar p = 0.031" in failure for failure in int8_result(400, lost=5)["failures"])


def test_on_25000_texts_the_int8_gate_is_as_strict_as_1_percent_and_half_a_point():
    assert parity.allowed_disagreements(25_000) == 250  # 99 % agreement, as before
    assert [parity.allowed_disagreements(n) for n in (100_000, 1_000_000)] == [1000, 10_000]  # never beyond 1 %
    assert int8_result(25_000, lost=125)["failures"] == []
    assert any("loses more than 0.5 points" in failure for failure in int8_result(25_000, lost=126)["failures"])
    assert int8_result(25_000, lost=120, gained=0, changed=250)["failures"] == []
    assert any("251 of 25,000 labels" in f for f in int8_result(25_000, lost=120, changed=251)["failures"])


def test_per_step_agreement_is_weighed_in_reviews():
    """98.43 % of the steps of 120 reviews agreed and the export was refused; the steps of a review
    move together, so it is weighed as 120 reviews, of which 3 may change (2.5 %)."""
    allowed = parity.allowed_disagreements(120) / 120
    assert allowed == 0.025 and 1 - 0.9843 < allowed
    assert parity.allowed_disagreements(25_000) / 25_000 == 0.01


def test_parity_catches_a_broken_artifact(exported, tmp_path):
    """Swap the int8 ONNX graph for one with shuffled LSTM weights: parity must name it."""
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    model = onnx.load(str(broken / "model.onnx"))
    for initializer in model.graph.initializer:
        array = onnx.numpy_helper.to_array(initializer)
        if array.dtype == np.float32 and array.ndim == 3:  # the LSTM's W and R
            initializer.CopyFrom(onnx.numpy_helper.from_array(array[..., ::-1].copy(), initializer.name))
    onnx.save(model, str(broken / "model.onnx"))
    common.record_artifacts(
        broken,
        {
            "onnx-full-float32": bundle.ArtifactRecord.from_dict(
                {
                    **bundle.read_manifest(broken)["artifacts"]["onnx-full-float32"],
                    **bundle.file_record(broken / "model.onnx"),
                }
            )
        },
    )
    _, _, trained = common.load_trained(broken)
    texts = [fit.EXAMPLE_REVIEWS[0], "awful boring mess", "great film, superb acting"] * 5
    results = parity.run_parity(broken, trained, texts, np.array([1, 0, 1] * 5), ["onnx-full-float32"])
    assert not results["onnx-full-float32"].passed
    with pytest.raises(common.ExportError, match="onnx-full-float32: max diff"):
        parity.raise_failures(results)


def test_missing_bundle_is_a_clear_error(tmp_path, capsys):
    assert tflite_export.main(["--model", str(tmp_path / "nowhere")]) == 1
    assert "no such model bundle folder" in capsys.readouterr().err


def test_bundle_without_keras_model_is_a_clear_error(exported, tmp_path, capsys):
    folder = tmp_path / "no-keras"
    shutil.copytree(exported, folder)
    (folder / "model.keras").unlink()
    assert onnx_export.main(["--model", str(folder)]) == 1
    assert "no model.keras" in capsys.readouterr().err


def test_other_schema_version_is_a_clear_error(exported, tmp_path, capsys):
    folder = tmp_path / "future"
    shutil.copytree(exported, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert tflite_export.main(["--model", str(folder)]) == 1
    assert "schema_version is 99" in capsys.readouterr().err


def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize("exporter", [tflite_export, onnx_export])
def test_missing_data_fails_before_anything_is_written(exported, tmp_path, capsys, monkeypatch, exporter):
    """Finding 2: without the dataset, export rewrote the artifacts, then asked for --data."""
    folder = shutil.copytree(exported, tmp_path / "no-data")
    before = snapshot(folder)
    monkeypatch.delenv("IMDB_DATA", raising=False)
    assert exporter.main(["--model", str(folder), "--data", str(tmp_path / "missing.tar.gz")]) == 1
    assert "missing.tar.gz: no such file or folder" in capsys.readouterr().err
    assert snapshot(folder) == before
    assert [path.name for path in tmp_path.iterdir()] == ["no-data"]  # no staging folder left


@pytest.mark.parametrize("exporter", [tflite_export, onnx_export])
def test_failed_parity_leaves_the_bundle_byte_identical(exported, tmp_path, capsys, monkeypatch, exporter):
    folder = shutil.copytree(exported, tmp_path / "strict")
    before = snapshot(folder)
    monkeypatch.setattr(parity, "FLOAT_ATOL", 0.0)  # no artifact can pass
    assert (
        exporter.main(
            [
                "--model",
                str(folder),
                "--data",
                str(SHARED_ARCHIVE if SHARED_ARCHIVE.is_file() else write_archive(tmp_path / "a.tar.gz", 20)),
                "--parity-limit",
                "20",
            ]
        )
        == 1
    )
    assert "parity failed" in capsys.readouterr().err
    assert snapshot(folder) == before
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_an_export_without_parity_lands_but_the_runtime_refuses_it(exported, tmp_path, capsys):
    from runtime import SentimentClassifier

    folder = shutil.copytree(exported, tmp_path / "unproven")
    assert onnx_export.main(["--model", str(folder), "--parity-limit", "0"]) == 0
    assert "parity skipped" in capsys.readouterr().err
    manifest = bundle.read_manifest(folder)
    assert not any(key.startswith("onnx-") for key in manifest["parity"])
    assert all(manifest["parity"][key]["passed"] for key in manifest["parity"])  # the TFLite ones stay
    with pytest.raises(bundle.BundleError, match="python -m export.parity"):
        SentimentClassifier.from_bundle(folder, "onnx")


@pytest.mark.slow
def test_shipped_bundle_parity_on_1000_real_reviews():
    require_shared_archive()
    if not (SHIPPED_BUNDLE / "model.keras").is_file():
        pytest.skip("no trained bundle shipped yet")
    results = parity.check_bundle(SHIPPED_BUNDLE, str(SHARED_ARCHIVE), 1000, record=False)
    assert len(results) == 12 and all(result.figures["reviews"] == 1000 for result in results.values())
    assert all(result.passed for result in results.values()), parity.failure_message(results)


@pytest.mark.parametrize("command", [tflite_export.main, onnx_export.main, parity.main])
def test_model_is_required_and_nothing_is_written_without_it(command, capsys, monkeypatch):
    """Leaving out --model re-exported the shipped bundle, models/imdb-lstm."""
    monkeypatch.setenv("IMDB_DATA", "/nonexistent/data.tar.gz")  # were --model not required, no data: nothing written

    def state():
        return sorted((path.name, path.stat().st_mtime_ns) for path in SHIPPED_BUNDLE.parent.rglob("*"))

    before = state()
    with pytest.raises(SystemExit) as caught:
        command(["--parity-limit", "20"] if command is not parity.main else ["--limit", "20"])
    assert caught.value.code == 2
    assert "the following arguments are required: --model" in capsys.readouterr().err
    assert state() == before


def without_onnx(exported, folder):
    """A copy of the exported bundle without its ONNX artifacts."""
    shutil.copytree(exported, folder, ignore=shutil.ignore_patterns("*.onnx"))
    manifest = bundle.read_manifest(folder)
    for key in [key for key in manifest["artifacts"] if key.startswith("onnx-")]:
        del manifest["artifacts"][key]
        manifest["parity"].pop(key, None)
    bundle.write_manifest(folder, manifest)
    return folder


def test_int8_failing_parity_never_blocks_the_float32_artifacts(exported, tmp_path, capsys, monkeypatch):
    """Every artifact of an export was refused when an int8 one missed its bound. Now the float32
    ones that passed land, the int8 ones do not, and the error says what to do."""
    from runtime import SentimentClassifier

    folder = without_onnx(exported, tmp_path / "bundle")
    data = SHARED_ARCHIVE if SHARED_ARCHIVE.is_file() else write_archive(tmp_path / "a.tar.gz", 20)
    monkeypatch.setattr(parity, "allowed_disagreements", lambda texts: -1)  # no int8 artifact can pass
    assert onnx_export.main(["--model", str(folder), "--data", str(data), "--parity-limit", "20"]) == 1
    err = capsys.readouterr().err
    assert "parity: onnx-full-float32: 20 texts" in err  # a line per stage off a terminal
    for graph in bundle.ARTIFACT_GRAPHS:
        assert f"onnx-{graph}-int8: " in err
    assert "Rerun with --precision float32 to export float32 only" in err
    manifest = bundle.read_manifest(folder)
    assert sorted(key for key in manifest["artifacts"] if key.startswith("onnx-")) == sorted(
        f"onnx-{graph}-float32" for graph in bundle.ARTIFACT_GRAPHS
    )
    assert not list(folder.glob("*.int8.onnx")) and not list(folder.glob(".*"))
    with SentimentClassifier.from_bundle(folder, "onnx") as classifier:  # proven: no --allow-unverified
        assert classifier.classify("great film, superb acting").label in ("negative", "positive")
    with pytest.raises(bundle.BundleError, match="no onnx-cached-int8 artifact"):
        SentimentClassifier.from_bundle(folder, "onnx", "int8")
    # Asking for float32 only is a success, and leaves the TFLite int8 artifacts as they were.
    tflite_int8 = (folder / "model.int8.tflite").read_bytes()
    assert (
        onnx_export.main(
            ["--model", str(folder), "--data", str(data), "--parity-limit", "20", "--precision", "float32"]
        )
        == 0
    )
    assert (folder / "model.int8.tflite").read_bytes() == tflite_int8
    assert bundle.read_manifest(folder)["parity"]["tflite-full-int8"]["passed"]


# --- one export of a bundle at a time (issue 33, findings 1 and 10) ---------------------------

HOLD_LOCK = (  # a process holding a flock on a file (a bundle's export lock, a staging folder) until stdin closes
    "import fcntl, os, sys\n"
    "flags = os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(sys.argv[1]) else os.O_CREAT)\n"
    "handle = os.open(sys.argv[1], flags)\n"
    "fcntl.flock(handle, fcntl.LOCK_EX)\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def hold_lock(path):
    """A real process holding `path`'s flock; close its stdin (and wait) to release it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def release(holder):
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


def only_keras(exported, folder):
    """A copy of the exported bundle with no device artifact: what training wrote."""
    shutil.copytree(exported, folder, ignore=shutil.ignore_patterns("*.onnx", "*.tflite", "*.npy"))
    manifest = bundle.read_manifest(folder)
    manifest["artifacts"] = {"keras": manifest["artifacts"]["keras"]}
    manifest.pop("parity", None)
    manifest.pop("padding_states", None)
    bundle.write_manifest(folder, manifest)
    return folder


def export_command(module, folder, data, *extra):
    return [sys.executable, "-m", module, "--model", str(folder), "--data", str(data), "--parity-limit", "20", *extra]


def small_data(tmp_path):
    return SHARED_ARCHIVE if SHARED_ARCHIVE.is_file() else write_archive(tmp_path / "a.tar.gz", 20)


def test_an_export_of_a_locked_bundle_fails_at_once_naming_the_lock(exported, tmp_path, capsys):
    """Finding 1: a second export went on beside the first; now it is refused before any work."""
    folder = shutil.copytree(exported, tmp_path / "bundle")
    holder = hold_lock(folder / common.LOCK_NAME)
    try:
        before = snapshot(folder)
        started = time.monotonic()
        assert onnx_export.main(["--model", str(folder), "--data", str(small_data(tmp_path))]) == common.EXIT_LOCKED
        assert time.monotonic() - started < 5  # at once: no data read, nothing converted
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
        assert "another export of this bundle is running" in err and f"{folder / common.LOCK_NAME}" in err
        assert snapshot(folder) == before
        assert parity.main(["--model", str(folder), "--limit", "5"]) == common.EXIT_LOCKED  # it writes records too
    finally:
        release(holder)
    assert not list(tmp_path.glob(".*"))  # no staging folder was made


def test_two_exports_at_once_lose_nothing(exported, tmp_path):
    """Finding 1: `export.tflite & export.onnx` on one bundle both exited 0 and the manifest kept
    only one's artifacts. Now whichever finds the bundle locked says so (exit 75); what any
    export that exited 0 wrote is in the bundle, proven."""
    folder = only_keras(exported, tmp_path / "bundle")
    data = small_data(tmp_path)
    runs = {
        backend: subprocess.Popen(
            export_command(f"export.{backend}", folder, data, "--precision", "float32"),
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for backend in bundle.BACKENDS
    }
    results = {backend: (run.wait(timeout=900), run.stderr.read()) for backend, run in runs.items()}
    assert {code for code, _ in results.values()} <= {0, common.EXIT_LOCKED}
    assert 0 in {code for code, _ in results.values()}
    manifest = bundle.Manifest.read(folder)
    for backend, (code, err) in results.items():
        keys = [bundle.artifact_key(backend, graph, "float32") for graph in bundle.ARTIFACT_GRAPHS]
        if code == 0:
            assert all(manifest.parity_of(key).proves(manifest.artifacts[key]) for key in keys), backend
        else:
            assert "another export of this bundle is running" in err and "Traceback" not in err
            assert not any(key in manifest.artifacts for key in keys)
    assert not (folder / common.LOCK_NAME).exists()


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(exported, tmp_path):
    """Finding 10: an export killed mid-run left `.NAME.staging-*` beside the bundle for good. The
    next export removes it; a staging folder a live run holds, and a link, stay."""
    folder = only_keras(exported, tmp_path / "bundle")
    data = small_data(tmp_path)
    killed = subprocess.Popen(
        export_command("export.onnx", folder, data, "--precision", "float32"),
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 600
    while not list(tmp_path.glob(".bundle.staging-*")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    (leftover,) = tmp_path.glob(".bundle.staging-*")
    live = tmp_path / ".bundle.staging-live0000"
    live.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    (tmp_path / ".bundle.staging-link0000").symlink_to(victim)
    holder = hold_lock(live)
    try:
        assert onnx_export.main(["--model", str(folder), "--data", str(data), "--parity-limit", "20"]) == 0
    finally:
        release(holder)
    assert not leftover.exists()
    assert live.is_dir() and (victim / "keep.txt").read_text() == "mine"
    assert sorted(path.name for path in tmp_path.glob(".*")) == [".bundle.staging-link0000", ".bundle.staging-live0000"]
    assert not (folder / common.LOCK_NAME).exists()  # the killed run's lock went with the old folder


def test_the_export_lock_never_follows_a_link_nor_writes_a_file(exported, tmp_path, capsys):
    folder = shutil.copytree(exported, tmp_path / "bundle")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (folder / common.LOCK_NAME).symlink_to(victim)
    before = snapshot(folder)
    assert onnx_export.main(["--model", str(folder), "--data", str(small_data(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the export lock") and err.count("\n") == 1
    assert victim.read_text() == "precious" and (folder / common.LOCK_NAME).is_symlink()
    assert snapshot(folder) == before
    (folder / common.LOCK_NAME).unlink()
    os.mkfifo(folder / common.LOCK_NAME)
    assert onnx_export.main(["--model", str(folder), "--data", str(small_data(tmp_path))]) == 1
    assert "the export lock is not a regular file" in capsys.readouterr().err
    (folder / common.LOCK_NAME).unlink()
    (folder / common.LOCK_NAME).write_text("left by someone")
    with common.bundle_lock(folder):
        assert (folder / common.LOCK_NAME).read_text() == "left by someone"  # opened, never truncated
