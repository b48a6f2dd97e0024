"""Train a text classifier (an LSTM) on labelled texts and write a model bundle to export: `python -m training.fit`.

    python -m training.fit --data ../shared/data/aclImdb_labeled.tar.gz      # a new bundle under runs/
    python -m training.fit --data ... --output models/imdb-lstm --overwrite  # remake the shipped one
    python -m training.fit --data ratings.csv --label-column rating          # your own data (training.sources)

The epoch is chosen on a validation set carved from the training reviews, and the validated
model is the one written. `--refit` instead trains a fresh model for the chosen number of epochs
on all the training reviews; that model is never validated (README, "Training", shows what it
scored). The 25,000 test reviews are used once, at the end, for the reported accuracy.

Other data (a folder per label, CSV/TSV, JSON lines; any number of labels) trains the same model
with one output per label; its test split is its own, or carved (training.splits), and the
bundle's metrics.json holds per-label precision, recall and F1 and the confusion matrix
(docs/your-own-data.md). What the data may hold is checked before any work (training/limits.py).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from runtime import bundle, cli
from runtime.config import ModelConfig
from runtime.text import Tokenizer
from training import cli as training_cli
from training import data, metrics, sources, splits, supervision
from training.bundle_writer import write_bundle
from training.cli import NAME_PATTERN, TRAINING_CONFIG, config_from, data_options_from, settings_from
from training.fitting import epochs_text, fit_model, monitor, one_hot, stage, text_noun
from training.quiet import quiet
from training.records import Evaluation, Fitted, PreparedData, Selection
from training.settings import TrainingSettings

# Names training.tune, probes and the tests read from here, though they live in training.cli,
# training.fitting and training.records.
__all__ = ["PreparedData", "TRAINING_CONFIG", "config_from", "data_options_from", "fit_model", "settings_from"]

# The bundle this repository ships. Only an explicit --output with --overwrite replaces it, and
# never with a --limit run.
SHIPPED_BUNDLE = bundle.REPOSITORY_BUNDLE
RUNS = Path("runs")
# New reviews shown at the end of a run (the seed's last step), as raw text.
EXAMPLE_REVIEWS = (
    "A wonderful film with a brilliant cast. I was moved from the first scene to the last.",
    "This was the worst movie I have seen in years: a dull plot, wooden acting and no point at all.",
    "The effects were good but the story dragged and I almost fell asleep halfway through.",
    "An absolute masterpiece. The director's best work, and the music is unforgettable.",
)


def default_name(data_source: str | None = None, data_format: str = "auto") -> str:
    """The bundle's name when --name is not given: imdb-lstm for IMDB, else the data's name."""
    imdb = sources.detect_format(data_source, data_format) == "imdb"
    return "imdb-lstm" if imdb else sources.data_stem(data_source)


def default_output(data_source: str | None = None, data_format: str = "auto") -> Path:
    """A new folder for each run: runs/imdb-lstm-<UTC time> for IMDB, else runs/<data name>-<UTC time>."""
    stem = default_name(data_source, data_format)
    return RUNS / (stem + datetime.datetime.now(datetime.timezone.utc).strftime("-%Y%m%d-%H%M%S"))


def check_output(
    output: Path, overwrite: bool = False, limit: int | None = None, data_source: str | None = None
) -> None:
    """Refuse, touching nothing, an output that must not be written: the shipped bundle from a
    --limit run, an existing folder without --overwrite, and what bundle.check_replaceable refuses
    (anything but a bundle, the data's folder or one above it, a name that is not UTF-8)."""
    if limit and output.resolve() == SHIPPED_BUNDLE.resolve():
        raise OSError(f"{output} is the shipped bundle, which a --limit run never replaces; choose another --output")
    if os.path.lexists(output) and not overwrite:
        raise OSError(f"{output} exists; pass --overwrite to replace it (it stays until the new bundle is complete)")
    bundle.check_replaceable(output, [data_source])


def prepare_output(
    output: Path, overwrite: bool = False, limit: int | None = None, data_source: str | None = None
) -> None:
    """Fail before training, not after, if the bundle cannot or must not be written."""
    check_output(output, overwrite, limit, data_source)
    parent = output.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create {parent}: {error.strerror}") from None
    if output.exists() and not output.is_dir():
        raise OSError(f"{output} exists and is not a folder")
    if not os.access(parent, os.W_OK) or (output.is_dir() and not os.access(output, os.W_OK)):
        raise OSError(f"{output} is not writable")


def check_settings(settings: TrainingSettings) -> None:
    """Refuse settings that contradict each other."""
    if settings.refit and settings.lr_decay:
        raise ValueError(
            "--lr-decay follows the validation curve, which a refit on all training reviews "
            "does not have; leave out --refit"
        )
    if settings.pretrain_epochs and settings.word2vec_epochs:
        raise ValueError("--pretrain-epochs and --word2vec-epochs both set the embedding's start; choose one")


def check_model_options(settings: TrainingSettings, config: ModelConfig) -> None:
    """Refuse what the model options do not combine with: the language model pretrains the seed's one LSTM."""
    if settings.pretrain_epochs and not config.uses_padding_states:
        raise ValueError(
            "--pretrain-epochs trains the one-layer model's LSTM as a language model; leave it out with "
            "--layers, --bidirectional or --attention (--word2vec-epochs starts their embedding)"
        )


def check_name(name: str) -> None:
    """Refuse a bundle name the server cannot put in its URLs."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"the bundle name {name!r} must be letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it is part of the server's URLs)"
        )


def read_data(
    data_source: str | None,
    settings: TrainingSettings,
    data_options: sources.DataOptions,
    test_split_fraction: float | None,
    verbose: int,
) -> PreparedData:
    """Read the data and split it: the test split (its own or carved), then fit and validation."""
    stage(f"Reading {data_source if data_source is not None else 'the IMDB archive (downloading it)'}", verbose)
    dataset = sources.load(data_source, data_options)
    if test_split_fraction is not None and dataset.test is not None:
        print(f"note: {dataset.source} has its own test split; --test-split is not used", file=sys.stderr)
    test_fraction = splits.DEFAULT_TEST_SPLIT if test_split_fraction is None else test_split_fraction
    train_split, test_split = splits.held_out(dataset, test_fraction, settings.seed)
    if settings.limit:
        train_split = data.sample(train_split, settings.limit, settings.seed)
        test_split = data.sample(test_split, settings.limit, settings.seed + 1)
    fit_split, validation_split = splits.validation(dataset, train_split, settings.validation_split, settings.seed)
    extras = supervision.read_extras(settings, dataset.labels, [validation_split, test_split])
    for line in supervision.describe(extras):
        stage(f"Extra supervision: {line}", verbose)
    return PreparedData(dataset, train_split, test_split, fit_split, validation_split, test_fraction, extras)


def select_epochs(
    prepared: PreparedData, settings: TrainingSettings, config: ModelConfig, imdb: bool, verbose: int
) -> Selection:
    """Fit with validation to choose the epoch; with --refit, refit on all training data for it."""
    started = time.perf_counter()
    fitted = fit_model(
        prepared.fit, settings.epochs, settings, config, imdb, verbose, prepared.validation, prepared.extras
    )
    selection_seconds = time.perf_counter() - started - (fitted.pretraining or {}).get("seconds", 0)
    history = fitted.history
    best_epoch = int(np.argmax(history[monitor(bool(prepared.extras.validation))]))
    refit = None
    if settings.refit:
        train_split = prepared.train
        print(
            f"Refitting on all {len(train_split):,} training {text_noun(imdb)} for the {epochs_text(best_epoch + 1)} "
            "validation chose",
            file=sys.stderr,
        )
        fitted = fit_model(train_split, best_epoch + 1, settings, config, imdb, verbose, extras=prepared.extras)
        refit = {
            "reviews": len(train_split),
            "epochs": best_epoch + 1,
            "accuracy": fitted.history["accuracy"][-1],
            "loss": fitted.history["loss"][-1],
        }
    training_seconds = time.perf_counter() - started
    return Selection(fitted, history, best_epoch, refit, training_seconds, selection_seconds)


def evaluate(model, tokenizer: Tokenizer, config: ModelConfig, test_split: data.Split) -> Evaluation:
    """One pass over the test texts gives the loss, the accuracy (computed as Keras' metric does, in
    float32) and the per-label figures."""
    import keras

    test_probabilities = model.predict(tokenizer.encode(test_split.texts), batch_size=256, verbose=0)
    test_loss = float(
        keras.ops.mean(keras.losses.categorical_crossentropy(one_hot(test_split, config), test_probabilities))
    )
    predicted = test_probabilities.argmax(axis=1)
    test_accuracy = float(np.float32((predicted == test_split.labels).sum()) / np.float32(len(test_split)))
    return Evaluation(
        test_loss, test_accuracy, metrics.classification_metrics(config.labels, test_split.labels, predicted)
    )


def choose_examples(fitted: Fitted, test_split: data.Split, imdb: bool):
    """IMDB's examples are new reviews, others the first test texts (with their true labels)."""
    config = fitted.config
    shown = range(min(4, len(test_split)))
    example_texts = EXAMPLE_REVIEWS if imdb else [test_split.texts[i] for i in shown]
    example_truth = None if imdb else [config.labels[test_split.labels[i]] for i in shown]
    return predict_examples(fitted.model, fitted.tokenizer, config, example_texts), example_truth


def format_examples(examples, labels, truth=None) -> str:
    """One line an example: with `truth`, whether the model was right and the true label, then the
    predicted label, the (top three) probabilities from high to low, and the start of the text."""
    width = max(len(label) for label in labels)
    lines = []
    for index, (text, probabilities) in enumerate(examples):
        ranked = sorted(zip(probabilities, labels), key=lambda pair: -pair[0])
        predicted = ranked[0][1]
        scores = ", ".join(f"{name} {p:.3f}" for p, name in ranked[:3])
        shown = " ".join(text.split())
        shown = shown if len(shown) <= 100 else shown[:97] + "..."
        verdict = ""
        if truth is not None:
            verdict = f"{'right' if predicted == truth[index] else 'WRONG'}  true {truth[index]:<{width}}  said "
        lines.append(f"  {verdict}{predicted:<{width}}  ({scores})  {shown}")
    return "\n".join(lines)


def predict_examples(
    model, tokenizer: Tokenizer, config: ModelConfig, texts=EXAMPLE_REVIEWS
) -> list[tuple[str, list[float]]]:
    probabilities = model.predict(tokenizer.encode(list(texts)), verbose=0)
    return [(text, [float(p) for p in row]) for text, row in zip(texts, probabilities)]


def print_summary(
    output: Path, test_split: data.Split, selection: Selection, evaluation: Evaluation, examples, example_truth, imdb
) -> None:
    """The test figures, where the bundle went, and what the model says of a few examples."""
    texts = text_noun(imdb)
    refit = selection.refit
    print(
        f"\nTest accuracy on {len(test_split):,} {texts}: {evaluation.accuracy:.4f} (loss {evaluation.loss:.4f}); "
        f"best validation epoch {selection.best_epoch + 1} of {len(selection.history['loss'])}"
        + (f", then refitted on {refit['reviews']:,} {texts}" if refit else "")
        + f"; bundle written to {output}"
    )
    print(metrics.format_metrics(evaluation.metrics))
    print(f"\n{'New reviews' if imdb else 'Test texts'} and what the model says:")
    print(format_examples(examples, selection.fitted.config.labels, example_truth))


def train(
    data_source: str | None,
    output: Path,
    settings: TrainingSettings,
    config: ModelConfig = TRAINING_CONFIG,
    verbose: int = 1,
    overwrite: bool = False,
    data_options: sources.DataOptions = sources.DataOptions(),
    test_split_fraction: float | None = None,
    name: str | None = None,
) -> dict:
    """Fit the model, evaluate it on the test set and write the bundle; return its manifest.

    The labels come from the data (config's are replaced). `test_split_fraction` (default
    splits.DEFAULT_TEST_SPLIT) is carved for data without a test split of its own. Data that is
    refused fails before anything is written. `output` must not exist unless `overwrite`; it is
    replaced only once the new bundle is whole, and only if it is a bundle (bundle.check_replaceable).
    `name` is the manifest's (default: `default_name`). Each stage is said on stderr unless verbose is 0."""
    check_settings(settings)
    check_model_options(settings, config)
    name = name or default_name(data_source, data_options.format)
    check_name(name)
    check_output(output, overwrite, settings.limit, data_source)  # before reading: a refusal takes no time
    prepared = read_data(data_source, settings, data_options, test_split_fraction, verbose)
    dataset = prepared.dataset
    config = replace(config, labels=dataset.labels)
    imdb = dataset.format == "imdb"
    prepare_output(output, overwrite, settings.limit, data_source)

    stage(
        f"Read {len(dataset.train) + (len(dataset.test) if dataset.test is not None else 0):,} {text_noun(imdb)} "
        f"with {len(dataset.labels)} labels; loading TensorFlow",
        verbose,
    )
    # Keras loads in fit_model, after the data checks, so a bad --data fails in a second, not after TF loads.
    selection = select_epochs(prepared, settings, config, imdb, verbose)
    fitted = selection.fitted
    stage(f"Evaluating on {len(prepared.test):,} test {text_noun(imdb)}", verbose)
    evaluation = evaluate(fitted.model, fitted.tokenizer, fitted.config, prepared.test)
    examples, example_truth = choose_examples(fitted, prepared.test, imdb)

    stage(f"Writing the bundle to {output}", verbose)
    manifest = write_bundle(output, data_source, name, settings, prepared, selection, evaluation)
    print_summary(output, prepared.test, selection, evaluation, examples, example_truth, imdb)
    return manifest


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m training.fit`: every row of training.cli's table."""
    parser = cli.parser("training.fit", __doc__.split("\n")[0])
    training_cli.add_options(parser, training_cli.FIT_OPTIONS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet(args.verbose)
    settings = settings_from(args)
    data_options = data_options_from(args)
    try:
        config = config_from(args)
        train(
            args.data,
            args.output or default_output(args.data, data_options.format),
            settings,
            config,
            verbose=0 if args.quiet else 1 if sys.stdout.isatty() else 2,
            overwrite=args.overwrite,
            data_options=data_options,
            test_split_fraction=args.test_split,
            name=args.name,
        )
    except (data.DataError, bundle.BundleError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
