import json
import shutil

import pytest

pytest.importorskip("nltk", reason="needs the training extra")

from export import evaluate  # noqa: E402
from runtime import bundle  # noqa: E402
from tests.conftest import ROOT, SHIPPED_BUNDLE  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CHALLENGE = ROOT / "datasets" / "negation-contrast" / "reviews.jsonl"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    if not (DATA / "sst" / "test.txt").is_file() or not (DATA / "cad" / "dev_paired.tsv").is_file():
        pytest.skip("the treebank and counterfactual pairs are not in ../shared/data")
    folder = tmp_path_factory.mktemp("evaluate") / "imdb-lstm"
    shutil.copytree(SHIPPED_BUNDLE, folder)
    argv = ["--model", str(folder), "--sst", str(DATA / "sst"), "--cad", str(DATA / "cad" / "dev_paired.tsv")]
    assert evaluate.main([*argv, "--challenge", str(CHALLENGE), "--backend", "onnx"]) == 0
    return folder


def test_every_benchmark_is_scored_through_the_runtime_into_the_manifest(evaluated):
    record = bundle.Manifest.read(evaluated).metrics.evaluation
    assert (record.backend, record.precision) == ("onnx", "float32")
    sizes = {name: getattr(record, name).texts for name in evaluate.EvaluationRecord.NESTED if getattr(record, name)}
    assert sizes == {
        "sst2_test": 1821,
        "sst2_dev": 872,
        "cad_dev_originals": 245,
        "cad_dev_revisions": 245,
        "cad_dev_pairs": 245,
        "challenge": 256,
    }
    assert record.cad_dev_pairs.accuracy <= min(record.cad_dev_originals.accuracy, record.cad_dev_revisions.accuracy)
    assert all(0.5 < getattr(record, name).accuracy <= 1 for name in ("sst2_test", "sst2_dev", "challenge"))
    assert record.sst2_test.sha256 == bundle.sha256_file(DATA / "sst" / "test.txt")


def test_the_evaluated_bundle_still_loads_and_round_trips(evaluated):
    from runtime import SentimentClassifier

    raw = json.loads((evaluated / bundle.MANIFEST_NAME).read_text())
    assert bundle.Manifest.parse(raw).to_dict() == raw
    with SentimentClassifier.from_bundle(evaluated, backend="onnx") as classifier:
        assert classifier.classify("A wonderful film.").label == "positive"


def test_a_broken_benchmark_is_one_error_line(tmp_path, capsys):
    broken = tmp_path / "challenge.jsonl"
    broken.write_text('{"text": "fine"}\n')
    code = evaluate.main(["--model", str(SHIPPED_BUNDLE), "--challenge", str(broken), "--no-write"])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: {broken}, line 1: not a JSON object with text and label"


def test_no_benchmark_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        evaluate.main(["--model", str(SHIPPED_BUNDLE)])
    assert exit.value.code == 2 and "give at least one benchmark" in capsys.readouterr().err
