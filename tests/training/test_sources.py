"""Reading your own labelled texts (training.sources), splitting them (training.splits), the
figures for N labels (training.metrics), and the ratings CSV script: no TensorFlow needed."""

import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from runtime import bundle
from runtime.config import ModelConfig
from tests.conftest import ROOT, write_archive
from tests.training.own_data import FIVE_LABELS, TWO_LABELS, examples, write_csv, write_folders, write_jsonl
from training import data, limits, metrics, source_readers, sources, splits
from training.sources import DataError, DataOptions


def test_csv_with_other_columns_and_non_ascii_labels(tmp_path):
    rows = examples(FIVE_LABELS, 4)
    dataset = sources.load(
        write_csv(tmp_path / "five.csv", rows, columns=("review", "sentiment")),
        DataOptions(text_column="review", label_column="sentiment"),
    )
    assert dataset.format == "csv" and dataset.test is None
    assert dataset.labels == ("ok", "schlecht", "très bien", "нейтрально", "良い")  # sorted by code point
    assert dataset.columns == {"text": "review", "label": "sentiment", "split": None}
    assert dataset.train.texts == [text for text, _ in rows]
    assert [dataset.labels[i] for i in dataset.train.labels] == [label for _, label in rows]
    assert dataset.train.ids.tolist() == list(range(2, 22))  # the line each row is on
    assert len(dataset.sha256) == 64


def test_tsv_with_a_byte_order_mark_and_csv_quoting(tmp_path):
    rows = [('Ein "guter"\tFilm,\nüber zwei Zeilen', "ja"), ("öde", "nein"), ("toll", "ja"), ("mies", "nein")]
    path = write_csv(tmp_path / "two.tsv", rows, delimiter="\t", bom=True)
    dataset = sources.load(path)
    assert dataset.format == "tsv" and dataset.labels == ("ja", "nein")
    assert dataset.train.texts == [text for text, _ in rows]
    assert dataset.train.ids.tolist() == [2, 4, 5, 6]  # the quoted row spans lines 2 and 3


def test_json_lines_with_integer_labels_sort_by_value(tmp_path):
    rows = [(f"text {i}", [10, 2, 1][i % 3]) for i in range(9)]
    dataset = sources.load(write_jsonl(tmp_path / "stars.jsonl", rows))
    assert dataset.format == "jsonl" and dataset.labels == ("1", "2", "10")
    assert sources.load(tmp_path / "stars.jsonl", DataOptions(labels=("10", "2", "1"))).labels == ("10", "2", "1")


def test_a_split_column_is_the_data_s_own_test_split(tmp_path):
    rows = [
        (text, label, "test" if i % 5 == 0 else "train") for i, (text, label) in enumerate(examples(TWO_LABELS, 10))
    ]
    path = write_csv(tmp_path / "split.csv", rows, columns=("text", "label", "split"))
    dataset = sources.load(path)
    assert len(dataset.train) == 16 and len(dataset.test) == 4
    assert dataset.columns["split"] == "split"
    assert splits.held_out(dataset, 0.5, 1) == (dataset.train, dataset.test)
    ignored = sources.load(path, DataOptions(split_column=""))
    assert ignored.test is None and len(ignored.train) == 20 and ignored.columns["split"] is None


def test_folder_per_label_with_and_without_train_and_test(tmp_path):
    rows = examples(FIVE_LABELS, 4)
    flat = sources.load(write_folders(tmp_path / "flat", rows))
    assert flat.format == "folder" and flat.test is None and flat.labels == sources.label_order(FIVE_LABELS)
    assert sorted(flat.train.texts) == sorted(text for text, _ in rows)
    both = sources.load(write_folders(tmp_path / "split", rows, splits=True))
    assert len(both.train) == 15 and len(both.test) == 5
    (tmp_path / "flat" / "ok" / "notes.md").write_text("not a .txt file, not read")
    assert sources.load(tmp_path / "flat").sha256 == flat.sha256 == sources.checksum(tmp_path / "flat", "folder")
    (tmp_path / "flat" / "ok" / "0004.txt").write_text("changed", encoding="utf-8")
    assert sources.load(tmp_path / "flat").sha256 != flat.sha256


def test_the_format_follows_the_name_or_format(tmp_path, small_archive):
    assert sources.detect_format(small_archive) == "imdb"
    assert sources.detect_format(None) == "imdb"
    assert sources.detect_format(tmp_path) == "folder"
    (tmp_path / "aclImdb").mkdir()
    assert sources.detect_format(tmp_path) == "imdb"
    path = write_csv(tmp_path / "data.txt", examples(TWO_LABELS, 2))
    with pytest.raises(DataError, match="cannot tell the format.*--format"):
        sources.load(path)
    assert sources.load(path, DataOptions(format="csv")).labels == ("ja", "nein")
    assert (
        sources.data_stem(tmp_path / "My Ratings.csv") == "My-Ratings"
        and sources.data_stem(small_archive) == "aclImdb_small"
    )


def test_imdb_through_sources_is_training_data_s(small_archive):
    """The IMDB path is unchanged: same reviews, order, labels and splits."""
    direct, through = data.load_imdb(small_archive), sources.load(small_archive)
    assert through.train.texts == direct.train.texts and through.test.texts == direct.test.texts
    assert through.labels == ("negative", "positive") and through.format == "imdb"
    fit, validation = splits.validation(through, through.train, 0.2, 3)
    expected_fit, expected_validation = splits.imdb_validation(direct.train, 0.2, 3)
    assert fit.texts == expected_fit.texts and validation.texts == expected_validation.texts


def refused(tmp_path, name: str, content: bytes, **options) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        sources.load(path, DataOptions(**options))
    return str(error.value)


@pytest.mark.parametrize(
    "name, content, options, message",
    [
        (
            "a.csv",
            b"body,label\nnice,x\n",
            {},
            r"a.csv line 1: no column 'text' \(the header has 'body', 'label'\); choose the text column with --text-column",
        ),
        ("a.csv", b"text,label\nnice,x\n", {"label_column": "stars"}, r"no column 'stars'.*--label-column"),
        ("a.csv", b"text,label\nnice,x\n   ,y\n", {}, r"a.csv line 3: empty text in 'text'"),
        ("a.csv", b"text,label\nnice,x\nbad,\n", {}, r"a.csv line 3: empty label in 'label'"),
        ("a.csv", b"text,label\nnice,x,extra\n", {}, r"a.csv line 2: too many fields \(3; the header has 2\)"),
        ("a.csv", b"text,label\nnice\n", {}, r"a.csv line 2: too few fields \(1; the header has 2\)"),
        ("a.csv", b'text,label\n"never closed,x\nb,y\n', {}, r"a.csv line 2: too few fields.*never closed"),
        ("a.csv", b"text,label\nnice,x\ncaf\xe9,y\n", {}, r"a.csv line 3: not UTF-8 \(byte 0xe9"),
        ("a.csv", b"text,label\na,x\nb,x\nc,y\n", {}, r"a.csv line 4: the only example of the label 'y'"),
        ("a.csv", b"text,label\na,x\nb,x\n", {}, r"only one label \('x'\) in 2 examples"),
        (
            "a.csv",
            b"text,label\n1,x\n2,x\n3.5,y\n-4,y\n",
            {},
            r"every text in column 'text' is a number.*--text-column",
        ),
        ("a.csv", b"text,label\n", {}, r"a.csv: no rows with a text and a label"),
        ("a.csv", b"", {}, r"a.csv: no rows \(not even a header row\)"),
        (
            "a.csv",
            b"text,label,split\na,x,train\nb,x,dev\n",
            {},
            r"a.csv line 3: 'split' is 'dev'; expected train or test",
        ),
        (
            "a.csv",
            b"text,label,split\na,x,train\nb,x,train\nc,y,train\nd,y,train\n",
            {},
            r"no test examples in the column 'split'",
        ),
        (
            "a.csv",
            b"text,label\na,x\nb,x\nc,y\nd,y\ne,z\nf,z\n",
            {"labels": ("x", "y")},
            r"a.csv line 6: the label 'z' is not one of --labels x,y",
        ),
        ("a.csv", b"text,label\na,x\nb,x\nc,y\nd,y\n", {"labels": ("x", "y", "w")}, r"no example of the label 'w'"),
        ("a.csv", b"text,label\na,x\tz\n", {}, r"the label 'x\\tz' holds a control character \(U\+0009\)"),
        ("a.jsonl", b'{"text": "a"}\n', {}, r"a.jsonl line 1: no key 'label' \(the line has 'text'\)"),
        ("a.jsonl", b'{"text": "a", "label": "x"}\n{"text": "a", "label": "x"\n', {}, r"a.jsonl line 2: not JSON"),
        ("a.jsonl", b'["a", "x"]\n', {}, r"a.jsonl line 1: expected an object"),
        ("a.jsonl", b'{"text": 5, "label": "x"}\n', {}, r"a.jsonl line 1: 'text' must be a string, not int"),
        ("a.jsonl", b'{"text": "a", "label": true}\n', {}, r"'label' must be a string or an integer, not bool"),
        ("a.jsonl", b'{"text": "a", "label": "x"}\n\xff\n', {}, r"a.jsonl line 2: not UTF-8"),
    ],
)
def test_bad_data_is_refused_naming_the_line(tmp_path, name, content, options, message):
    error = refused(tmp_path, name, content, **options)
    assert re.search(message, error), error


def test_bad_folders_are_refused_naming_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "stray.txt").write_text("a text outside any label folder")
    with pytest.raises(DataError, match="empty: no label sub-folders; expected .*/<label>/\\*.txt"):
        sources.load(tmp_path / "empty")
    root = write_folders(tmp_path / "bad", examples(TWO_LABELS, 3))
    (root / "ja" / "latin1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match="latin1.txt: not UTF-8"):
        sources.load(root)
    (root / "ja" / "latin1.txt").write_text("   \n")
    with pytest.raises(DataError, match="latin1.txt: empty text"):
        sources.load(root)
    (root / "ja" / "latin1.txt").unlink()
    (root / "vielleicht").mkdir()
    (root / "vielleicht" / "x.txt").write_text("nur eins")
    with pytest.raises(DataError, match="vielleicht/x.txt: the only example of the label 'vielleicht'"):
        sources.load(root)
    (tmp_path / "no-texts" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no .txt files"):
        sources.load(tmp_path / "no-texts")


def test_options_that_do_not_fit_the_format_are_refused(tmp_path, small_archive):
    with pytest.raises(DataError, match="--label-column: only for CSV"):
        sources.load(small_archive, DataOptions(label_column="rating"))
    with pytest.raises(DataError, match="IMDB's labels are fixed"):
        sources.load(small_archive, DataOptions(labels=("a", "b")))
    with pytest.raises(DataError, match="must differ"):
        sources.load(write_csv(tmp_path / "a.csv", examples(TWO_LABELS, 2)), DataOptions(label_column="text"))


def test_the_carved_test_split_is_seeded_stratified_and_disjoint(tmp_path):
    dataset = sources.load(write_csv(tmp_path / "five.csv", examples(FIVE_LABELS, 20)))
    train, test = splits.held_out(dataset, 0.2, seed=7)
    again_train, again_test = splits.held_out(dataset, 0.2, seed=7)
    assert test.texts == again_test.texts and train.texts == again_train.texts
    assert np.bincount(test.labels).tolist() == [4] * 5 and len(train) == 80
    assert not set(train.ids) & set(test.ids)
    assert splits.held_out(dataset, 0.2, seed=8)[1].ids.tolist() != test.ids.tolist()
    fit, validation = splits.validation(dataset, train, 0.25, seed=7)
    assert np.bincount(validation.labels).tolist() == [4] * 5 and len(fit) == 60
    assert not set(fit.ids) & set(validation.ids) and not set(fit.ids) & set(test.ids)


def test_a_label_with_two_examples_keeps_one_for_training(tmp_path):
    rows = [row for row in examples(TWO_LABELS, 10) if row[1] == "ja"] + [("mies", "nein"), ("öde", "nein")]
    dataset = sources.load(write_csv(tmp_path / "few.csv", rows))
    train, test = splits.held_out(dataset, 0.2, seed=1)
    assert np.bincount(test.labels).tolist()[1] == 1 and np.bincount(train.labels).tolist()[1] == 1
    fit, validation = splits.validation(dataset, train, 0.2, seed=1)
    assert 1 in fit.labels.tolist() and 1 not in validation.labels.tolist()


def test_the_record_re_creates_the_test_texts_and_refuses_other_data(tmp_path):
    path = write_jsonl(tmp_path / "two.jsonl", examples(TWO_LABELS, 15))
    dataset = sources.load(path)
    train, test = splits.held_out(dataset, 0.3, seed=5)
    fit, validation = splits.validation(dataset, train, 0.2, seed=5)
    record = splits.data_record(dataset, fit, validation, test, 0.3, 5)
    assert record.test_split == 0.3 and record.split_seed == 5 and record.labels == ("ja", "nein")
    assert record.label_counts["test"] == {"ja": 4, "nein": 4} and record.test_reviews == 8
    manifest = bundle.Manifest(
        name="two",
        model_config=ModelConfig(labels=("ja", "nein")),
        tokenizer=bundle.TokenizerRecord(vocabulary=bundle.FileRecord(file="vocab.json", bytes=0, sha256=""), words=0),
        training=bundle.TrainingRecord(settings={"seed": 5, "limit": None}, data=record),
    )
    assert splits.recreate_test(path, manifest).texts == test.texts
    other = write_jsonl(tmp_path / "other.jsonl", examples(TWO_LABELS, 15, seed=1))
    with pytest.raises(DataError) as error:
        splits.recreate_test(other, manifest)
    assert record.sha256 in str(error.value) and sources.checksum(other, "jsonl") in str(error.value)
    with pytest.raises(DataError, match="trained on two.jsonl .* pass --data"):
        splits.recreate_test(None, manifest)


def test_metrics_for_many_labels_and_ratings():
    labels = ("1", "2", "4", "10")
    truth = np.array([0, 0, 1, 2, 3, 3])
    predicted = np.array([0, 1, 1, 1, 3, 2])
    result = metrics.classification_metrics(labels, truth, predicted)
    assert result["accuracy"] == pytest.approx(3 / 6, abs=1e-6)
    assert result["confusion"]["counts"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]]
    assert result["per_label"]["2"] == {
        "precision": pytest.approx(1 / 3, abs=1e-6),
        "recall": 1.0,
        "f1": pytest.approx(0.5, abs=1e-6),
        "support": 1,
    }
    assert result["per_label"]["4"]["f1"] == 0.0
    assert result["within_one_accuracy"] == pytest.approx(4 / 6, abs=1e-6)  # 1->2 and 4->2 off by 1 and 2
    assert "within_one_accuracy" not in metrics.classification_metrics(("a", "b"), truth % 2, predicted % 2)
    assert "| 10 | 1.000 | 0.500 | 0.667 | 2 |" in metrics.format_metrics(result)


def test_the_ratings_script_writes_text_rating_and_split(tmp_path):
    archive = write_archive(tmp_path / "small.tar.gz", per_folder=6)
    output = tmp_path / "ratings.csv"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "imdb_ratings_csv.py"), str(archive), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "train: 12 reviews (2: 6, 7: 6)" in result.stdout
    with open(output, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["text", "rating", "split"] and len(rows) == 24
    dataset = sources.load(output, DataOptions(label_column="rating"))
    assert dataset.labels == ("2", "7") and len(dataset.train) == len(dataset.test) == 12
    assert sorted(dataset.test.texts) == sorted(data.load_imdb(archive).test.texts)
    missing = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "imdb_ratings_csv.py"),
            str(tmp_path / "no.tar.gz"),
            str(tmp_path / "out.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "no such file" in missing.stderr and not (tmp_path / "out.csv").exists()


# Labels a reader could not tell apart, text that is not Unicode, and limits (findings B, C) ---


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            ["\u00e9", "e\u0301"],
            r"line 4: the label 'e\\u0301' differs from '\\xe9' \(.* line 2\) only in case or Unicode",
        ),
        (["\u00c9", "e\u0301"], r"only in case or Unicode form"),
        (["Pos", "pos"], r"line 4: the label 'pos' differs from 'Pos' \(.* line 2\) only in case"),
        # Look-alikes folded as Unicode's skeleton folds them (UTS #39; issue 33, 9): Cyrillic,
        # a no-break space, fullwidth.
        (
            ["pos", "\u0440os"],
            r"line 4: the label '\\u0440os' differs from 'pos' \(.* line 2\) only in case or Unicode",
        ),
        (["very pos", "very\u00a0pos"], r"the label 'very\\xa0pos' differs from 'very pos'"),
        (["pos", "\uff50os"], r"the label '\\uff50os' differs from 'pos'"),
        (["neg\u200b", "pos"], r"the label 'neg\\u200b' holds an invisible format character \(U\+200B\)"),
        (["\u202eneg", "pos"], r"holds an invisible format character \(U\+202E\)"),
        (["ne\x85g", "pos"], r"holds a control character \(U\+0085\)"),
        (["ne\u2028g", "pos"], r"holds a line separator \(U\+2028\)"),
        (["ne\u2029g", "pos"], r"holds a paragraph separator \(U\+2029\)"),
    ],
)
def test_labels_that_look_alike_or_hide_characters_are_refused(tmp_path, labels, message):
    path = tmp_path / "a.tsv"
    path.write_text(
        "text\tlabel\n" + "".join(f"text {i}\t{label}\n" for label in labels for i in range(2)), encoding="utf-8"
    )
    with pytest.raises(DataError, match=message):
        sources.load(path)


def test_a_label_that_is_not_unicode_is_refused_before_training(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": f"text {i}", "label": label}) + "\n" for label in ("\ud800pos", "neg") for i in range(2)
        )
    )
    with pytest.raises(DataError, match=r"a.jsonl line 1: the label '\\ud800pos' is not valid UTF-8"):
        sources.load(path)
    root = write_folders(tmp_path / "folders", examples(TWO_LABELS, 3))
    latin1 = root / os.fsdecode("sch\u00f6n".encode("latin-1"))
    latin1.mkdir()
    for index in range(2):
        (latin1 / f"{index}.txt").write_text("ein schöner Film")
    with pytest.raises(DataError, match=r"the label 'sch\\udcf6n' is not valid UTF-8"):
        sources.load(root)


def test_labels_are_composed_and_a_lone_decomposed_one_is_kept_composed(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{label}\n" for label in ("e\u0301", "x") for i in range(2)))
    assert sources.load(path).labels == ("x", "\u00e9")  # composed, then sorted
    assert sources.load(path, DataOptions(labels=("x", "e\u0301"))).labels == ("x", "\u00e9")


def test_skipped_folders_are_reported(tmp_path, capsys):
    root = write_folders(tmp_path / "folders", examples(TWO_LABELS, 3))
    for hidden in ("...", ".hidden"):
        (root / hidden).mkdir()
        (root / hidden / "1.txt").write_text("a text")
    dataset = sources.load(root)
    assert dataset.labels == ("ja", "nein")
    err = capsys.readouterr().err
    assert re.search(r"note: skipped the folder .*/\.\.\.: hidden .*, with 1 .txt files", err)
    assert re.search(r"note: skipped the folder .*/\.hidden: hidden", err)


def test_too_many_labels_are_refused_before_training(tmp_path, monkeypatch):
    path = tmp_path / "many.csv"
    path.write_text(
        "text,label\n" + "".join(f"text {i},label{n}\n" for n in range(limits.MAX_LABELS + 1) for i in range(2))
    )
    with pytest.raises(DataError, match=f"{limits.MAX_LABELS + 1:,} distinct labels; a model may have at most"):
        sources.load(path)
    path.write_text("text,label\n" + "".join(f"text {i},{n:0>90}\n" for n in range(400) for i in range(2)))
    with pytest.raises(DataError, match="bytes, over the .* a bundle's manifest has room for"):
        sources.load(path)


def test_texts_over_the_limit_are_refused_without_reading_them_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", 1000)
    monkeypatch.setattr(limits, "MAX_LINE_BYTES", 4000)
    monkeypatch.setattr(source_readers, "CSV_FIELD_LIMIT", 1000)  # where the CSV reader reads it
    root = write_folders(tmp_path / "folders", examples(TWO_LABELS, 3))
    (root / "ja" / "big.txt").write_text("word " * 300)
    with pytest.raises(DataError, match="big.txt: over 1,000 bytes"):
        sources.load(root)
    path = tmp_path / "a.csv"
    path.write_text("text,label\n" + "a,x\nb,x\nc,y\n" + "long " * 300 + ",y\n")
    with pytest.raises(DataError, match="a.csv line 5: .*over 1,000"):
        sources.load(path)
    path.write_text("text,label\n" + "a,x\nb,x\nc,y\n" + "long " * 1000 + ",y\n")
    with pytest.raises(DataError, match="a.csv line 5: longer than 4,000 bytes"):
        sources.load(path)
    path = tmp_path / "a.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": text, "label": label}) + "\n"
            for text, label in (("a", "x"), ("b", "x"), ("c", "y"), ("é" * 600, "y"))
        )
    )
    with pytest.raises(DataError, match="a.jsonl line 4: the text in 'text' is over 1,000 bytes"):
        sources.load(path)


def test_an_archive_member_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    """An 18 MB archive whose first review is 4 GiB of zeros passed 3 GiB of memory (finding B3);
    the header's size is refused before a byte is inflated."""
    import tarfile

    class Zeros(io.RawIOBase):
        def __init__(self, size):
            self.left = size

        def readinto(self, buffer):
            count = min(len(buffer), self.left)
            buffer[:count] = bytes(count)
            self.left -= count
            return count

    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        info = tarfile.TarInfo("aclImdb/train/pos/0_9.txt")
        info.size = limits.MAX_TEXT_BYTES + 1
        archive.addfile(info, Zeros(info.size))
    with pytest.raises(DataError, match=r"bomb.tar.gz: the member aclImdb/train/pos/0_9.txt is 4,194,305 bytes"):
        sources.load(path)


def test_excel_s_sep_line_names_the_delimiter(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "sep=;\r\ntext;label\r\nsehr gut, wirklich;ja\r\nöde;nein\r\ntoll;ja\r\nmies;nein\r\n".encode("utf-8-sig")
    )
    dataset = sources.load(path)
    assert dataset.labels == ("ja", "nein") and dataset.train.texts[0] == "sehr gut, wirklich"
    assert dataset.train.ids.tolist() == [3, 4, 5, 6]  # line numbers count the sep= line
    path.write_bytes(b"sep=;\ntext;label\na;x\nb\n")
    with pytest.raises(DataError, match="excel.csv line 4: too few fields"):
        sources.load(path)


def test_data_names_are_url_safe():
    assert sources.data_stem("_my data.csv") == "my-data"
    assert sources.data_stem("良い.csv") == "data"
    assert sources.data_stem(None) == "imdb"


def test_archive_members_are_capped_and_not_kept(tmp_path, monkeypatch):
    """1 M empty members (a 6 MB .tar.gz) took 484 MB: TarFile kept every header (issue 33, 5)."""
    import tarfile

    path = tmp_path / "many.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for number in range(50):
            archive.addfile(tarfile.TarInfo(f"junk/{number}"))
    kept = []
    real_next = tarfile.TarFile.next

    def next_member(self):
        member = real_next(self)
        kept.append(len(self.members))
        return member

    monkeypatch.setattr(tarfile.TarFile, "next", next_member)
    monkeypatch.setattr(limits, "MAX_ARCHIVE_MEMBERS", 20, raising=False)
    with pytest.raises(DataError, match=r"many.tar.gz: over 20 members; a training archive may have at most that"):
        sources.load(path)
    assert 20 <= len(kept) <= 22  # stopped at the cap
    kept.clear()
    monkeypatch.setattr(limits, "MAX_ARCHIVE_MEMBERS", 1000)
    with pytest.raises(DataError, match="not the aclImdb layout"):
        sources.load(path)
    assert len(kept) >= 50 and max(kept) <= 1  # every header read, but one held at a time


def test_header_columns_are_capped(tmp_path, monkeypatch):
    """40 k columns took 15 s in the quadratic duplicate check; a 30 MB header would take days (issue 33, 5)."""
    monkeypatch.setattr(limits, "MAX_COLUMNS", 5, raising=False)
    path = tmp_path / "wide.csv"
    path.write_text("text,label," + ",".join(f"c{n}" for n in range(4)) + "\nok,pos,1,2,3,4\n")
    with pytest.raises(DataError, match=r"wide.csv line 1: the header has 6 columns; a table may have at most 5"):
        sources.load(path)
    path.write_text("text,label,x,x\n")
    with pytest.raises(DataError, match=r"wide.csv line 1: the header names 'x' twice"):
        sources.load(path)
