"""python -m training.fit on your own data: labels from the data, Dense(N), the manifest's record
of the data and its splits, per-label figures, the confusion plot, and refusals that write nothing."""

import json
import os
import re

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
    details = json.loads((output / figures["test_details"]).read_text(encoding="utf-8"))
    assert list(details["per_label"]) == manifest["model_config"]["labels"] == details["confusion"]["labels"]
    assert all(row["support"] == 8 for row in details["per_label"].values())
    assert details["macro_f1"] == figures["test_macro_f1"]
    counts = details["confusion"]["counts"]
    assert sum(map(sum, counts)) == 40
    assert figures["test_accuracy"] == pytest.approx(sum(counts[i][i] for i in range(5)) / 40, abs=1e-6)
    assert figures["test_accuracy"] > 0.8 and figures["test_macro_f1"] > 0.8  # the cue words are learnt
    assert "test_within_one_accuracy" not in figures  # the labels are not numbers
    assert [record["file"] for record in manifest["reports"]][-2:] == ["confusion.png", "MODEL_CARD.md"]
    card = (output / "MODEL_CARD.md").read_text(encoding="utf-8")  # issue #34 item 8: a card fitting its data
    assert "IMDB" not in card and ", ".join(manifest["model_config"]["labels"]) in card
    for record in bundle.Manifest.parse(manifest).file_records():  # every file of the bundle, the plot included
        bundle.verify_file(output, record)
    assert {path.name for path in output.iterdir()} == {
        record.file for record in bundle.Manifest.parse(manifest).file_records()
    } | {bundle.MANIFEST_NAME}


def test_json_lines_with_their_own_split_and_a_fixed_label_order(tmp_path, capsys):
    rows = [
        (text, label, "test" if index % 4 == 0 else "train")
        for index, (text, label) in enumerate(examples(TWO_LABELS, 20))
    ]
    data = write_jsonl(tmp_path / "zwei.jsonl", rows, keys=("text", "label", "split"))
    output = tmp_path / "bundle"
    assert (
        fit.main(["--data", str(data), "--labels", "nein,ja", "--output", str(output), "--test-split", "0.5", *QUICK])
        == 0
    )
    captured = capsys.readouterr()
    assert "has its own test split; --test-split is not used" in captured.err
    assert "Test accuracy on 10 texts" in captured.out and "| nein |" in captured.out
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"]["labels"] == ["nein", "ja"]
    record = manifest["training"]["data"]
    assert record["test_split"] is None and record["columns"]["split"] == "split" and record["test_reviews"] == 10


def test_star_ratings_get_within_one_accuracy(tmp_path):
    rows = [
        (text, {"ja": 9, "nein": 2}[label] + index // 2 % 2)
        for index, (text, label) in enumerate(examples(TWO_LABELS, 12))
    ]
    output = tmp_path / "bundle"
    assert (
        fit.main(
            [
                "--data",
                str(write_csv(tmp_path / "stars.csv", rows, columns=("text", "stars"))),
                "--label-column",
                "stars",
                "--output",
                str(output),
                "--limit",
                "30",
                "--epochs",
                "1",
                "--word2vec-epochs",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"]["labels"] == ["2", "3", "9", "10"]
    assert 0.0 <= manifest["metrics"]["test_within_one_accuracy"] <= 1.0
    assert manifest["training"]["settings"]["limit"] == 30 and manifest["training"]["data"]["fit_reviews"] <= 30


def test_the_imdb_run_records_its_format_and_labels(small_archive, tmp_path):
    output = tmp_path / "bundle"
    assert (
        fit.main(
            [
                "--data",
                str(small_archive),
                "--output",
                str(output),
                "--epochs",
                "1",
                "--word2vec-epochs",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    record = manifest["training"]["data"]
    assert list(record)[:6] == [
        "source",
        "sha256",
        "fit_reviews",
        "validation_reviews",
        "validation_block_ids",
        "test_reviews",
    ]  # the keys IMDB bundles always had, first
    assert record["format"] == "imdb" and record["labels"] == ["negative", "positive"] and record["test_split"] is None
    assert manifest["model_config"]["labels"] == ["negative", "positive"]
    details = json.loads((output / "metrics.json").read_text())
    assert set(details["per_label"]) == {"negative", "positive"}


@pytest.mark.parametrize(
    "content, options, message",
    [
        (b"text,label\nnice,x\nbad,\n", [], "bad.csv line 3: empty label in 'label'"),
        (b"text,label\n1,x\n2,x\n3,y\n4,y\n", [], "every text in column 'text' is a number"),
        (b"review,label\nnice,x\n", [], "no column 'text'"),
        (b"text,label\na,x\nb,x\nc,y\nd,y\n", ["--label-column", "rating"], "no column 'rating'"),
        (b"text,label\na,x\nb,x\nc,y\nd,y\n", ["--format", "imdb"], "not a readable tar archive"),
    ],
)
def test_refused_data_writes_nothing(tmp_path, monkeypatch, capsys, content, options, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_bytes(content)
    assert fit.main(["--data", "bad.csv", *options]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.strip().splitlines() if not line.startswith("Reading ")]  # the one progress line
    assert line.startswith("error: ") and message in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.csv"]  # not even runs/


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--labels", "a"], "two or more distinct labels"),
        (["--labels", "a,a"], "two or more distinct labels"),
        (["--test-split", "1"], "must be between 0 and 1"),
        (["--vocab-size", "3"], "must exceed the 3 reserved ids"),
        (["--format", "xml"], "invalid choice"),
    ],
)
def test_nonsense_data_options_exit_non_zero(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


TINY = ["--epochs", "1", "--word2vec-epochs", "0", "--batch-size", "64", "--sequence-length", "40", "--quiet"]


def _contents(folder):
    return sorted(
        (str(path.relative_to(folder)), path.read_bytes() if path.is_file() else None) for path in folder.rglob("*")
    )


def test_overwrite_never_replaces_the_data_or_a_folder_that_is_not_a_bundle(tmp_path, monkeypatch, capsys):
    """`--data mydata/two.csv --output mydata --overwrite` deleted the data, notes and photos (finding A)."""
    monkeypatch.chdir(tmp_path)
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    write_csv(mydata / "two.csv", examples(TWO_LABELS, 6))
    (mydata / "notes.txt").write_text("my notes")
    (mydata / "photos").mkdir()
    (mydata / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("keep")
    before = _contents(tmp_path)
    for output, message in (
        ("mydata", "holds the training data"),
        (".", "holds the training data"),
        ("other", "not a model bundle"),
        ("mydata/two.csv", "not a folder"),
    ):
        assert fit.main(["--data", "mydata/two.csv", "--output", output, "--overwrite", *TINY]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: ") and message in line
    assert _contents(tmp_path) == before
    # A bundle, even one holding the data, is still the data's folder: refused.
    assert fit.main(["--data", "mydata/two.csv", "--output", "bundle", *TINY]) == 0
    (tmp_path / "bundle" / "two.csv").write_bytes((mydata / "two.csv").read_bytes())
    assert fit.main(["--data", "bundle/two.csv", "--output", "bundle", "--overwrite", *TINY]) == 1
    assert "holds the training data" in capsys.readouterr().err and (tmp_path / "bundle" / "two.csv").is_file()
    # A bundle is replaced.
    (tmp_path / "bundle" / "two.csv").unlink()
    assert fit.main(["--data", "mydata/two.csv", "--output", "bundle", "--overwrite", *TINY]) == 0
    assert bundle.is_bundle(tmp_path / "bundle")


def test_an_output_name_that_is_not_utf8_is_refused_before_reading(tmp_path, capsys):
    data = write_csv(tmp_path / "two.csv", examples(TWO_LABELS, 6))
    output = tmp_path / os.fsdecode(b"\xffmodel")
    assert fit.main(["--data", str(data), "--output", str(output), *TINY]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err and not os.path.lexists(output)


def test_many_labels_keep_the_manifest_small_and_loadable(tmp_path, capsys):
    """300 labels x 3 rows wrote a 1.2 MB manifest that export and the runtime refused (finding B1)."""
    labels = {f"label {index:03d}": f"cue{index}a cue{index}b" for index in range(300)}
    data = write_csv(tmp_path / "many.csv", examples(labels, 3))
    output = tmp_path / "bundle"
    assert fit.main(["--data", str(data), "--output", str(output), *TINY]) == 0
    err = capsys.readouterr().err
    assert "note: no confusion.png: 300 labels are too many" in err
    assert (output / bundle.MANIFEST_NAME).stat().st_size < 64 * 1024
    manifest = bundle.read_manifest(output)
    assert len(manifest["model_config"]["labels"]) == 300
    assert [record["file"] for record in manifest["reports"]] == [
        "history.json",
        "accuracy.png",
        "loss.png",
        "metrics.json",
        "MODEL_CARD.md",
    ]
    for record in bundle.Manifest.parse(manifest).file_records():
        bundle.verify_file(output, record)
    details = json.loads((output / "metrics.json").read_text())
    assert len(details["confusion"]["counts"]) == 300 and sum(map(sum, details["confusion"]["counts"])) == 300


def test_the_vocabulary_is_sized_to_the_words_found(tmp_path, capsys):
    """--vocab-size 16777216 on 16 rows kept a 16M x 128 embedding: 6 GiB (finding B4). That size is
    now refused by the weight limit; a large one under it is still sized to the words found."""
    import keras

    data = write_csv(tmp_path / "small.csv", examples(TWO_LABELS, 8))
    output = tmp_path / "bundle"
    assert fit.main(["--data", str(data), "--output", str(output), "--vocab-size", "500000", *TINY]) == 0
    manifest = bundle.read_manifest(output)
    words = manifest["tokenizer"]["words"]
    assert words < 20 and manifest["model_config"]["vocab_size"] == words + 3
    model = keras.models.load_model(output / "model.keras", compile=False)
    assert model.get_layer("embedding").get_weights()[0].shape == (words + 3, 128)
    assert f"the vocabulary has {words + 3} ids, not 500,000" in capsys.readouterr().err


def test_name_progress_and_examples(tmp_path, capsys):
    """--name is the manifest's name (finding F3); each long stage says so on stderr, --quiet
    silences it (F4); the test texts shown say the true label, sorted probabilities (F2)."""
    data = write_csv(tmp_path / "verdicts.csv", examples(FIVE_LABELS, 8))
    argv = ["--data", str(data), "--epochs", "1", "--word2vec-epochs", "1", "--sequence-length", "40"]
    assert fit.main([*argv, "--output", str(tmp_path / "a"), "--name", "verdicts", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert bundle.read_manifest(tmp_path / "a")["name"] == "verdicts"
    assert "Reading" not in captured.err and "word2vec" not in captured.err
    lines = captured.out.split("Test texts and what the model says:\n")[1].splitlines()
    assert len(lines) == 4 and all(re.match(r"  (right|WRONG)  true \S", line) for line in lines)
    for line in lines:
        scores = [float(value) for value in re.findall(r" (\d\.\d{3})[,)]", line)]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert fit.main([*argv, "--output", str(tmp_path / "b"), "--limit", "20"]) == 0
    err = capsys.readouterr().err
    for stage in (
        "Reading",
        "loading TensorFlow",
        "Building the vocabulary",
        "word2vec: 1 epoch on",  # one epoch, not "1 epochs"
        "Training: up to",
        "Evaluating",
        "Writing the bundle",
    ):
        assert stage in err, stage
    assert bundle.read_manifest(tmp_path / "b")["name"] == "verdicts"  # the data's name, not the folder's


def test_format_examples_show_truth_and_sort_probabilities():
    text = fit.format_examples([("a text", [0.1, 0.7, 0.2])], ("neg", "pos", "meh"), ["neg"])
    assert text == "  WRONG  true neg  said pos  (pos 0.700, meh 0.200, neg 0.100)  a text"
    assert fit.format_examples([("a", [0.3, 0.7])], ("neg", "pos")) == "  pos  (pos 0.700, neg 0.300)  a"


@pytest.mark.parametrize("name", ["my model", "-x", "a/b", "", "é", "x" * 65])
def test_a_name_that_is_not_url_safe_is_refused(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit.main(["--name", name])
    assert exit_info.value.code == 2 and "--name" in capsys.readouterr().err


def test_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        fit.main(["--help"])
    out = capsys.readouterr().out
    assert "Train a text classifier" in out
    assert "the seed" not in out and "seed's" not in out  # project history, not what a user needs


def test_a_spreadsheet_with_spaces_and_hash_in_its_column_names_trains(tmp_path, monkeypatch):
    """The 600-row, 3-label case (finding G), with docs/your-own-data.md's commands."""
    import csv

    labels = {
        "thumbs up": "superb wonderful loved",
        "thumbs down": "awful boring dreadful",
        "meh": "average forgettable passable",
    }
    path = tmp_path / "verdicts.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Ref #", "Our Verdict", "Review Body"])
        for index, (text, label) in enumerate(examples(labels, 200)):
            writer.writerow([f"R-{index:04d}", label, text])
    monkeypatch.chdir(tmp_path)
    assert (
        fit.main(
            [
                "--data",
                "verdicts.csv",
                "--text-column",
                "Review Body",
                "--label-column",
                "Our Verdict",
                "--epochs",
                "2",
                "--word2vec-epochs",
                "0",
                "--sequence-length",
                "40",
                "--quiet",
            ]
        )
        == 0
    )
    (output,) = (tmp_path / "runs").iterdir()
    manifest = bundle.read_manifest(output)
    assert manifest["name"] == "verdicts" and manifest["model_config"]["labels"] == ["meh", "thumbs down", "thumbs up"]
    assert manifest["training"]["data"]["columns"] == {"text": "Review Body", "label": "Our Verdict", "split": None}
    assert manifest["training"]["data"]["test_reviews"] == 120 and manifest["metrics"]["test_accuracy"] > 0.6
    assert (output / "confusion.png").is_file()
