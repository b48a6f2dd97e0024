import json

import pytest

pytest.importorskip("keras", reason="needs the training extra")
pytest.importorskip("nltk", reason="needs the training extra")

from runtime import bundle  # noqa: E402
from tests.conftest import synthetic_review, write_archive  # noqa: E402
from training import fit  # noqa: E402

TREES = "(1 (2 This) (2 (1 (1 (2 is) (2 n't)) (3 (2 a) (2 (3 great) (2 film)))) (2 .)))\n(4 (3 Loved) (2 it))\n"


def pair_file(path, pairs=6):
    rows = ["Sentiment\tText\tbatch_id"]
    for k in range(pairs):
        text = [synthetic_review(k, positive) + f" A pair numbered {k}." for positive in (False, True)]  # new texts
        rows += [f"Negative\t{text[0]}\t{k}", f"Positive\t{text[1]}\t{k}"]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    folder = tmp_path_factory.mktemp("supervised")
    archive = write_archive(folder / "small.tar.gz", per_folder=60)
    trees = folder / "trees.txt"
    trees.write_text(TREES * 20)
    pairs = pair_file(folder / "pairs.tsv")
    output = folder / "bundle"
    argv = ["--data", str(archive), "--output", str(output), "--epochs", "2", "--quiet", "--word2vec-epochs", "0"]
    argv += ["--adversarial", "0", "--distill", "0", "--phrases", str(trees), "--pairs", str(pairs)]
    argv += ["--phrases-validation", str(trees), "--pairs-validation", str(pairs)]
    assert fit.main(argv) == 0
    return output


def test_every_extra_source_is_recorded_with_its_citation(supervised):
    record = bundle.Manifest.read(supervised).training.supervision
    assert record.phrases.texts == 7 and record.phrases.source == "trees.txt"  # distinct non-neutral phrases
    assert record.phrases_validation.texts == 40  # the sentences, one a tree
    assert record.pairs.texts == 12 and "Kaushik" in record.pairs.citation and "Socher" in record.phrases.citation


def test_each_epoch_is_chosen_on_the_mean_of_every_validation_accuracy(supervised):
    history = json.loads((supervised / "history.json").read_text())
    assert {"val_phrases_accuracy", "val_pairs_accuracy", "val_mean_accuracy"} <= set(history)
    for epoch, mean in enumerate(history["val_mean_accuracy"]):
        parts = [history[key][epoch] for key in ("val_accuracy", "val_phrases_accuracy", "val_pairs_accuracy")]
        assert mean == pytest.approx(sum(parts) / 3)
    manifest = bundle.Manifest.read(supervised)
    best = max(range(len(history["val_mean_accuracy"])), key=history["val_mean_accuracy"].__getitem__)
    assert manifest.metrics.best_epoch == best + 1


def test_a_bad_extra_file_fails_before_training(tmp_path, capsys):
    archive = write_archive(tmp_path / "small.tar.gz", per_folder=10)
    broken = tmp_path / "trees.txt"
    broken.write_text("(3 (2 unclosed)\n")
    code = fit.main(["--data", str(archive), "--output", str(tmp_path / "b"), "--phrases", str(broken), "--quiet"])
    assert code != 0 and "line 1: not a labelled phrase tree" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_pairs_that_are_all_held_out_texts_are_refused(tmp_path, capsys):
    archive = write_archive(tmp_path / "small.tar.gz", per_folder=10)
    rows = ["Sentiment\tText\tbatch_id"] + [
        f"{label}\t{synthetic_review(1000 + k, label == 'Positive')}\t{k}"
        for k in range(3)
        for label in ("Negative", "Positive")
    ]  # the archive's test reviews 1000-1002
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(rows) + "\n")
    code = fit.main(
        ["--data", str(archive), "--output", str(tmp_path / "b"), "--pairs-validation", str(pairs), "--quiet"]
    )
    assert code != 0 and "no pairs left to use" in capsys.readouterr().err
