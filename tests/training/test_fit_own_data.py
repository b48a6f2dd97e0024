"""python -m training.fit on your own data: labels from the data, Dense(N), the manifest's record
of the data and its splits, per-label figures, the confusion plot, and refusals that write nothing."""

import pytest

pytest.importorskip("keras", reason="needs the training extra")

from runtime import bundle  # noqa: E402
from tests.training.own_data import FIVE_LABELS, TWO_LABELS, examples, write_csv, write_jsonl  # noqa: E402
from training import fit, sources  # noqa: E402

QUICK = ["--epochs", "3", "--word2vec-epochs", "0", "--batch-size", "16", "--learning-rate", "0.005", "--quiet"]


@pytest.fixture(scope="module")
def five_label_run(tmp_path_factory):
    """A 5-label CSV with non-ASCII labels and texts, trained without --output from its own folder."""
    folder = tmp_path_factory.mktemp("five")
    data = write_csv(folder / "Meine Bewertungen.csv", examples(FIVE_LABELS, 40), columns=("review", "sentiment"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert fit.main(["--data", str(data), "--text-column", "review", "--label-column", "sentiment", *QUICK]) == 0
    (output,) = (folder / "runs").iterdir()
    return data, output


def test_labels_come_from_the_data_and_size_the_model(five_label_run):
    import keras

    data, output = five_label_run
    assert output.name.startswith("Meine-Bewertungen-")  # named after the data, not imdb-lstm
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"]["labels"] == ["ok", "schlecht", "très bien", "нейтрально", "良い"]
    model = keras.models.load_model(output / "model.keras", compile=False)
    assert model.output_shape == (None, 5)


def test_the_manifest_records_the_data_and_its_splits(five_label_run):
    data, output = five_label_run
    record = bundle.read_manifest(output)["training"]["data"]
    assert record["source"] == "Meine Bewertungen.csv" and record["sha256"] == sources.checksum(data, "csv")
    assert record["format"] == "csv" and record["columns"] == {"text": "review", "label": "sentiment", "split": None}
    assert record["test_split"] == 0.2 and record["split_seed"] == 1337
    assert record["test_reviews"] == 40 and record["fit_reviews"] + record["validation_reviews"] == 160
    assert set(record["label_counts"]["test"].values()) == {8}
    assert record["label_counts"]["validation"] == {label: 6 for label in record["labels"]}


def test_per_label_figures_and_the_confusion_plot(five_label_run):
    _, output = five_label_run
    manifest = bundle.read_manifest(output)
    figures = manifest["metrics"]
    assert list(figures["test_per_label"]) == manifest["model_config"]["labels"]
    assert all(row["support"] == 8 for row in figures["test_per_label"].values())
    counts = figures["test_confusion"]["counts"]
    assert sum(map(sum, counts)) == 40
    assert figures["test_accuracy"] == pytest.approx(sum(counts[i][i] for i in range(5)) / 40, abs=1e-6)
    assert figures["test_accuracy"] > 0.8 and figures["test_macro_f1"] > 0.8  # the cue words are learnt
    assert "test_within_one_accuracy" not in figures  # the labels are not numbers
    assert [record["file"] for record in manifest["reports"]][-1] == "confusion.png"
    for record in bundle.file_records(manifest):  # every file of the bundle, the plot included
        bundle.verify_file(output, record)
    assert {path.name for path in output.iterdir()} == {record["file"] for record in bundle.file_records(manifest)} | {
        bundle.MANIFEST_NAME}


def test_json_lines_with_their_own_split_and_a_fixed_label_order(tmp_path, capsys):
    rows = [(text, label, "test" if index % 4 == 0 else "train") for index, (text, label) in enumerate(examples(TWO_LABELS, 20))]
    data = write_jsonl(tmp_path / "zwei.jsonl", rows, keys=("text", "label", "split"))
    output = tmp_path / "bundle"
    assert fit.main(["--data", str(data), "--labels", "nein,ja", "--output", str(output), "--test-split", "0.5", *QUICK]) == 0
    captured = capsys.readouterr()
    assert "has its own test split; --test-split is not used" in captured.err
    assert "Test accuracy on 10 texts" in captured.out and "| nein |" in captured.out
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"]["labels"] == ["nein", "ja"]
    record = manifest["training"]["data"]
    assert record["test_split"] is None and record["columns"]["split"] == "split" and record["test_reviews"] == 10


def test_star_ratings_get_within_one_accuracy(tmp_path):
    rows = [(text, {"ja": 9, "nein": 2}[label] + index // 2 % 2) for index, (text, label) in enumerate(examples(TWO_LABELS, 12))]
    output = tmp_path / "bundle"
    assert fit.main(["--data", str(write_csv(tmp_path / "stars.csv", rows, columns=("text", "stars"))),
                     "--label-column", "stars", "--output", str(output), "--limit", "30", "--epochs", "1",
                     "--word2vec-epochs", "0", "--quiet"]) == 0
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"]["labels"] == ["2", "3", "9", "10"]
    assert 0.0 <= manifest["metrics"]["test_within_one_accuracy"] <= 1.0
    assert manifest["training"]["settings"]["limit"] == 30 and manifest["training"]["data"]["fit_reviews"] <= 30


def test_the_imdb_run_records_its_format_and_labels(small_archive, tmp_path):
    output = tmp_path / "bundle"
    assert fit.main(["--data", str(small_archive), "--output", str(output), "--epochs", "1", "--word2vec-epochs", "0",
                     "--quiet"]) == 0
    manifest = bundle.read_manifest(output)
    record = manifest["training"]["data"]
    assert list(record)[:6] == ["source", "sha256", "fit_reviews", "validation_reviews", "validation_block_ids",
                                "test_reviews"]  # the keys IMDB bundles always had, first
    assert record["format"] == "imdb" and record["labels"] == ["negative", "positive"] and record["test_split"] is None
    assert manifest["model_config"]["labels"] == ["negative", "positive"]
    assert set(manifest["metrics"]["test_per_label"]) == {"negative", "positive"}


@pytest.mark.parametrize("content, options, message", [
    (b"text,label\nnice,x\nbad,\n", [], "bad.csv line 3: empty label in 'label'"),
    (b"text,label\n1,x\n2,x\n3,y\n4,y\n", [], "every text in column 'text' is a number"),
    (b"review,label\nnice,x\n", [], "no column 'text'"),
    (b"text,label\na,x\nb,x\nc,y\nd,y\n", ["--label-column", "rating"], "no column 'rating'"),
    (b"text,label\na,x\nb,x\nc,y\nd,y\n", ["--format", "imdb"], "not a readable tar archive"),
])
def test_refused_data_writes_nothing(tmp_path, monkeypatch, capsys, content, options, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_bytes(content)
    assert fit.main(["--data", "bad.csv", *options]) == 1
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.csv"]  # not even runs/


@pytest.mark.parametrize("argv, message", [
    (["--labels", "a"], "two or more distinct labels"),
    (["--labels", "a,a"], "two or more distinct labels"),
    (["--test-split", "1"], "must be between 0 and 1"),
    (["--vocab-size", "3"], "must exceed the 3 reserved ids"),
    (["--format", "xml"], "invalid choice"),
])
def test_nonsense_data_options_exit_non_zero(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
