import json

import pytest

pytest.importorskip("keras", reason="needs the training extra")

import keras  # noqa: E402

from runtime import bundle  # noqa: E402
from runtime.config import ModelConfig  # noqa: E402
from tests.conftest import write_archive  # noqa: E402
from training import fit, splits  # noqa: E402


@pytest.fixture(scope="module")
def quick_bundle(tmp_path_factory):
    """One quick training run on a few hundred synthetic reviews, shared by the tests below."""
    folder = tmp_path_factory.mktemp("fit")
    archive = write_archive(folder / "small.tar.gz", per_folder=150)
    output = folder / "bundle"
    code = fit.main(["--data", str(archive), "--output", str(output), "--epochs", "2", "--batch-size", "32", "--quiet"])
    assert code == 0
    return output


def test_quick_run_writes_a_complete_bundle(quick_bundle):
    names = {path.name for path in quick_bundle.iterdir()}
    assert {
        "model.keras",
        "vocab.txt",
        "manifest.json",
        "history.json",
        "accuracy.png",
        "loss.png",
        "confusion.png",
    } <= names
    assert not [name for name in names if name.startswith(".")]
    manifest = bundle.read_manifest(quick_bundle)
    assert manifest["model_config"]["lstm_units"] == 100 and manifest["model_config"]["sequence_length"] == 500
    assert manifest["model_config"]["dropout"] == fit.TRAINING_CONFIG.dropout == 0.5  # what the README says ships
    assert manifest["training"]["settings"]["word2vec_epochs"] == 5 == manifest["metrics"]["pretraining"]["epochs"]
    assert manifest["training"]["data"]["test_reviews"] == 300
    assert manifest["training"]["data"]["fit_reviews"] + manifest["training"]["data"]["validation_reviews"] == 300
    for record in bundle.Manifest.parse(manifest).file_records():
        bundle.verify_file(quick_bundle, record)
    assert [record["file"] for record in manifest["reports"]] == [
        "history.json",
        "accuracy.png",
        "loss.png",
        "metrics.json",
        "confusion.png",
        "MODEL_CARD.md",
    ]
    details = json.loads((quick_bundle / manifest["metrics"]["test_details"]).read_text())
    assert (
        details["confusion"]["labels"] == ["negative", "positive"]
        and set(details["per_label"]) == {"negative", "positive"}
        and sum(map(sum, details["confusion"]["counts"])) == 300
    )
    assert manifest["name"] == "imdb-lstm"  # not the folder's name
    history = json.loads((quick_bundle / "history.json").read_text())
    assert len(history["val_accuracy"]) == manifest["metrics"]["epochs_run"] == 2
    assert manifest["metrics"]["validation_accuracy"] == max(history["val_accuracy"])
    assert 0.0 <= manifest["metrics"]["test_accuracy"] <= 1.0
    assert (quick_bundle / "accuracy.png").read_bytes().startswith(b"\x89PNG")


def test_the_model_learns_the_synthetic_sentiment(quick_bundle):
    assert bundle.read_manifest(quick_bundle)["metrics"]["test_accuracy"] > 0.8


def test_prints_test_accuracy_and_example_predictions(tmp_path, capsys):
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=20)
    assert fit.main(["--data", str(archive), "--output", str(tmp_path / "out"), "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Test accuracy on 40 reviews" in out
    assert all(review in out for review in fit.EXAMPLE_REVIEWS)


@pytest.mark.parametrize("extra", [[], ["--ema", "0.9"]], ids=["weights", "moving-average"])
def test_the_kept_weights_are_the_ones_validation_chose(tmp_path, extra):
    """The saved model scores on the validation reviews exactly what the manifest records for the
    chosen epoch; with --ema that is the moving average, which validation saw."""
    import keras

    from runtime.text import Tokenizer
    from training import data

    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=40)
    output = tmp_path / "bundle"
    assert (
        fit.main(
            [
                "--data",
                str(archive),
                "--output",
                str(output),
                "--epochs",
                "3",
                "--batch-size",
                "8",
                "--learning-rate",
                "0.01",
                "--quiet",
                *extra,
            ]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    settings = manifest["training"]["settings"]
    assert settings["ema_momentum"] == (0.9 if extra else None)
    _, validation = splits.imdb_validation(
        data.load_imdb(archive).train, settings["validation_split"], settings["seed"]
    )
    tokenizer = Tokenizer.load(output / bundle.VOCABULARY_NAME, manifest["model_config"]["sequence_length"])
    model = keras.models.load_model(output / "model.keras", compile=False)
    model.compile(loss="categorical_crossentropy")
    loss = model.evaluate(
        tokenizer.encode(validation.texts), keras.utils.to_categorical(validation.labels, 2), verbose=0
    )
    assert loss == pytest.approx(manifest["metrics"]["validation_loss"], rel=1e-5)


def test_the_refit_learns_from_every_training_review(tmp_path):
    """With --refit, after validation picks the epochs, the model and vocabulary come from all
    training reviews: a word found in one review only, wherever that review fell, is in the vocabulary."""
    from runtime.text import split_words
    from training import data

    rare = {
        f"aclImdb/train/{label}/{500 + i}_{8 if label == 'pos' else 3}.txt": f"a rarity{label}{i} film".encode()
        for label in ("neg", "pos")
        for i in range(10)
    }
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=40, extra=rare)
    output = tmp_path / "bundle"
    assert fit.main(["--data", str(archive), "--output", str(output), "--epochs", "2", "--refit", "--quiet"]) == 0
    manifest = bundle.read_manifest(output)
    train = data.load_imdb(archive).train
    assert manifest["metrics"]["refit"]["reviews"] == len(train) == 100
    assert manifest["metrics"]["refit"]["epochs"] == manifest["metrics"]["best_epoch"]
    vocabulary = set((output / bundle.VOCABULARY_NAME).read_text().split())
    assert vocabulary == {word for text in train.texts for word in split_words(text)}
    assert {f"rarity{label}{i}" for label in ("neg", "pos") for i in range(10)} <= vocabulary


def test_pretraining_is_recorded_in_the_manifest(tmp_path):
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=40)
    output = tmp_path / "bundle"
    assert (
        fit.main(
            [
                "--data",
                str(archive),
                "--output",
                str(output),
                "--epochs",
                "1",
                "--pretrain-epochs",
                "2",
                "--word2vec-epochs",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    assert manifest["training"]["settings"]["pretrain_epochs"] == 2
    pretraining = manifest["metrics"]["pretraining"]
    assert pretraining["epochs"] == len(pretraining["loss"]) == 2 and pretraining["windows"] >= 1


def test_word2vec_start_is_recorded_in_the_manifest(tmp_path):
    pytest.importorskip("gensim", reason="needs the training extra")
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=40)
    output = tmp_path / "bundle"
    assert (
        fit.main(
            ["--data", str(archive), "--output", str(output), "--epochs", "1", "--word2vec-epochs", "2", "--quiet"]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    assert manifest["training"]["settings"]["word2vec_epochs"] == 2
    start = manifest["metrics"]["pretraining"]
    assert start["method"] == "word2vec skip-gram" and start["epochs"] == 2 and start["words"] > 10


def test_pretraining_and_word2vec_are_refused_together(tmp_path, capsys):
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=10)
    assert (
        fit.main(
            [
                "--data",
                str(archive),
                "--output",
                str(tmp_path / "out"),
                "--pretrain-epochs",
                "1",
                "--word2vec-epochs",
                "1",
            ]
        )
        == 1
    )
    assert "choose one" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_dropout_options_reach_the_model_and_the_manifest(tmp_path):
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=20)
    output = tmp_path / "bundle"
    assert (
        fit.main(
            [
                "--data",
                str(archive),
                "--output",
                str(output),
                "--epochs",
                "1",
                "--dropout",
                "0.5",
                "--recurrent-dropout",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    manifest = bundle.read_manifest(output)
    assert manifest["model_config"] == {
        **ModelConfig().to_dict(),
        "dropout": 0.5,
        "recurrent_dropout": 0.0,
        "vocab_size": manifest["tokenizer"]["words"] + 3,
    }  # the words found
    lstm = keras.saving.load_model(output / "model.keras").get_layer("lstm")
    assert (lstm.dropout, lstm.recurrent_dropout) == (0.5, 0.0)


def test_lr_decay_and_refit_are_refused_together(tmp_path, capsys):
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=10)
    assert fit.main(["--data", str(archive), "--output", str(tmp_path / "out"), "--lr-decay", "0.5", "--refit"]) == 1
    assert "leave out --refit" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_interrupted_run_leaves_the_previous_bundle(quick_bundle, tmp_path, monkeypatch):
    import shutil

    output = tmp_path / "bundle"
    shutil.copytree(quick_bundle, output)
    before = {path.name: path.read_bytes() for path in output.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("training.plots.plot_history", interrupted)
    archive = write_archive(tmp_path / "tiny.tar.gz", per_folder=20)
    with pytest.raises(KeyboardInterrupt):
        fit.main(["--data", str(archive), "--output", str(output), "--overwrite", "--epochs", "1", "--quiet"])
    assert {path.name: path.read_bytes() for path in output.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "must be a positive integer"),
        (["--batch-size", "-3"], "must be a positive integer"),
        (["--validation-split", "1.5"], "must be between 0 and 1"),
        (["--pretrain-epochs", "-1"], "must be 0 or more"),
        (["--word2vec-epochs", "x"], "invalid non_negative_int value"),
        (["--learning-rate", "abc"], "invalid positive_float value"),
        (["--dropout", "1"], "dropout must be in [0, 1), got 1.0"),
    ],
)
def test_nonsense_options_exit_non_zero(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_path_fails_fast(tmp_path, capsys):
    assert fit.main(["--data", str(tmp_path / "missing.tar.gz"), "--output", str(tmp_path / "out")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_corrupt_data_fails_fast(tmp_path, capsys):
    (tmp_path / "bad.tar.gz").write_bytes(b"garbage")
    assert fit.main(["--data", str(tmp_path / "bad.tar.gz"), "--output", str(tmp_path / "out")]) == 1
    assert "not a readable tar archive" in capsys.readouterr().err


def test_unwritable_output_fails_before_training(small_archive, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert fit.main(["--data", str(small_archive), "--output", str(blocker / "bundle")]) == 1
    assert "cannot create" in capsys.readouterr().err
    assert fit.main(["--data", str(small_archive), "--output", str(blocker), "--overwrite"]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_an_existing_bundle_is_replaced_only_with_overwrite(quick_bundle, small_archive, capsys):
    """Finding 1 of the bundle issue: a quick run replaced the shipped bundle without a word."""
    before = {path.name: path.read_bytes() for path in quick_bundle.iterdir()}
    assert fit.main(["--data", str(small_archive), "--output", str(quick_bundle), "--epochs", "1", "--quiet"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in quick_bundle.iterdir()} == before


def test_a_limit_run_never_replaces_the_shipped_bundle(small_archive, capsys):
    manifest = (fit.SHIPPED_BUNDLE / bundle.MANIFEST_NAME).read_bytes()
    argv = ["--data", str(small_archive), "--output", str(fit.SHIPPED_BUNDLE), "--overwrite", "--limit", "20"]
    assert fit.main(argv) == 1
    assert "never replaces" in capsys.readouterr().err
    assert (fit.SHIPPED_BUNDLE / bundle.MANIFEST_NAME).read_bytes() == manifest


def test_without_output_a_run_writes_a_new_folder_under_runs(small_archive, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert fit.main(["--data", str(small_archive), "--epochs", "1", "--limit", "20", "--quiet"]) == 0
    (written,) = (tmp_path / "runs").iterdir()
    assert written.name.startswith("imdb-lstm-") and bundle.read_manifest(written)["name"] == "imdb-lstm"
    assert f"bundle written to runs/{written.name}" in capsys.readouterr().out


def test_sizes_whose_weights_exceed_the_limit_are_one_line(tmp_path, capsys):
    """`--lstm-units 65536` ended in a TensorFlow out-of-memory traceback (issue 33, 10)."""
    with pytest.raises(SystemExit) as exit_info:
        fit.main(["--lstm-units", "65536"])
    assert exit_info.value.code == 2
    assert "--lstm-units: vocab_size 10,000, embedding_dim 128 and lstm_units 65,536 make" in capsys.readouterr().err
    output = tmp_path / "out"
    assert fit.main(["--embedding-dim", "5000", "--lstm-units", "2000", "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "a model may have at most 100,000,000" in err
    assert not output.exists()
