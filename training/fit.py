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
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from runtime import bundle, cli
from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID, Tokenizer, pad_ids
from training import data, metrics, sources, splits, supervision
from training.mixing import Mixture
from training.quiet import quiet
from training.settings import TrainingSettings

# The bundle this repository ships. Only an explicit --output with --overwrite replaces it, and
# never with a --limit run.
SHIPPED_BUNDLE = bundle.REPOSITORY_BUNDLE
RUNS = Path("runs")
# The seed's model, trained with more dropout on the LSTM's inputs than the seed's 0.2: 0.5 won on
# validation (README, "Training"). Dropout is off at inference, so the exported graphs are the same.
TRAINING_CONFIG = ModelConfig(dropout=0.5)
# The per-label figures and the confusion matrix of the test split: a file of the bundle, since
# they grow with the labels (squared) and the manifest must stay small (bundle.MAX_MANIFEST_BYTES).
METRICS_NAME = "metrics.json"
# A bundle's name, which the Open Inference Protocol puts in URLs (/v2/models/NAME).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
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


def library_versions() -> dict:
    import keras
    import matplotlib
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
    }


@dataclass
class PreparedData:
    """The data read and its splits: held out for the test, and the training split carved for validation."""

    dataset: data.Dataset
    train: data.Split
    test: data.Split
    fit: data.Split
    validation: data.Split
    test_fraction: float
    extras: supervision.Extras = supervision.Extras()


@dataclass
class Fitted:
    """A model fitted by `fit_model`, with its vocabulary, Keras history and pretraining record."""

    model: object
    tokenizer: Tokenizer
    history: dict
    pretraining: dict | None
    config: ModelConfig  # its vocab_size is the ids the vocabulary uses


@dataclass
class Selection:
    """The validated fit (or the refit on all training data) and how the epochs were chosen."""

    fitted: Fitted  # the model written: the validated one, or the refitted one with --refit
    history: dict  # the validated run's
    best_epoch: int  # 0-based
    refit: dict | None
    training_seconds: float
    selection_seconds: float  # the validated run's, without its pretraining


@dataclass
class Evaluation:
    """The test split's loss, accuracy and per-label figures (metrics.classification_metrics)."""

    loss: float
    accuracy: float
    metrics: dict


def stage(message: str, verbose: int) -> None:
    """Say a stage on stderr unless verbose is 0 (long silent stages look like a hang)."""
    if verbose:
        print(message, file=sys.stderr, flush=True)


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


def text_noun(imdb: bool) -> str:
    """What the progress lines call the examples."""
    return "reviews" if imdb else "texts"


def one_hot(split: data.Split, config: ModelConfig):
    import keras

    return keras.utils.to_categorical(split.labels, config.num_classes)


def build_vocabulary_and_model(split: data.Split, settings: TrainingSettings, config: ModelConfig, texts: str, verbose):
    """The vocabulary of `split` and a new model for it; the model's vocab_size is the ids found."""
    from training.model import build_model

    stage(f"Building the vocabulary from {len(split):,} {texts}", verbose)
    tokenizer = Tokenizer.build(split.texts, config.vocab_size, config.sequence_length)
    model_config = config
    if tokenizer.vocab_size < config.vocab_size:  # an id for each word found, never an unused row
        print(
            f"note: only {tokenizer.vocab_size - FIRST_WORD_ID:,} distinct words in the training {texts}; "
            f"the vocabulary has {tokenizer.vocab_size:,} ids, not {config.vocab_size:,}",
            file=sys.stderr,
        )
        model_config = replace(config, vocab_size=tokenizer.vocab_size)
    model = build_model(
        model_config, settings.learning_rate, settings.clipnorm, settings.ema_momentum, settings.weight_decay
    )
    return tokenizer, model, model_config


def distilled_targets(split: data.Split, settings: TrainingSettings, config: ModelConfig, imdb: bool, verbose):
    """The one-hot labels, mixed with an n-gram teacher's soft targets if --distill; and the teacher's record."""
    targets, teacher = one_hot(split, config), None
    if settings.distill_weight:
        from training.teacher import out_of_fold_probabilities

        texts = text_noun(imdb)
        stage(f"Training the n-gram teacher on the fit {texts}", verbose)
        # IMDB's blocks of consecutive ids are mostly one film each; other data's ids are line
        # or file numbers, which say nothing of what texts share, so each text is its own group.
        groups = split.ids // data.VALIDATION_BLOCK_IDS if imdb else split.ids
        soft, teacher = out_of_fold_probabilities(split.texts, split.labels, groups, config.num_classes)
        print(
            f"Teacher: out-of-fold accuracy {teacher['out_of_fold_accuracy']:.4f} on the fit {texts} "
            f"({teacher['seconds']:.0f} s)",
            file=sys.stderr,
        )
        targets = (1 - settings.distill_weight) * targets + settings.distill_weight * soft
    return targets, teacher


def start_embedding(model, token_ids, model_config: ModelConfig, settings: TrainingSettings, texts: str, verbose):
    """Start the embedding from word2vec, or pretrain as a language model, if asked; return the record."""
    from training.pretrain import pretrain
    from training.word_vectors import word2vec_embedding

    pretraining = None
    if settings.word2vec_epochs:
        stage(f"word2vec: {settings.word2vec_epochs} epochs on the fit {texts}", verbose)
        embedding, pretraining = word2vec_embedding(token_ids, model_config, settings.word2vec_epochs, settings.seed)
        model.get_layer("embedding").set_weights([embedding])
    if settings.pretrain_epochs:
        stage(f"Pretraining as a language model: {settings.pretrain_epochs} epochs", verbose)
        pretraining = pretrain(
            model,
            token_ids,
            model_config,
            settings.pretrain_epochs,
            settings.batch_size,
            settings.learning_rate,
            settings.clipnorm,
            verbose,
        )
    return pretraining


def training_callbacks(settings: TrainingSettings, validating: bool, extra_validation: bool = False) -> list:
    """Keep the best epoch (and decay the learning rate) when validating; end on the average with --ema."""
    import keras

    callbacks = []
    if validating:
        keep_best = keras.callbacks.EarlyStopping(
            monitor=monitor(extra_validation), mode="max", patience=settings.patience, restore_best_weights=True
        )
        # With an average, it is what validation sees and what keep_best keeps (so it goes first).
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if settings.ema_momentum else []
        callbacks.append(keep_best)
        if settings.lr_decay:
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_accuracy", mode="max", factor=settings.lr_decay, patience=0, min_lr=1e-5
                )
            )
    elif settings.ema_momentum:
        callbacks = [keras.callbacks.SwapEMAWeights()]  # end on the average, as validation chose it
    return callbacks


def monitor(extra_validation: bool) -> str:
    """The validation figure the epoch is chosen on: IMDB's accuracy, or the mean with the extra sets'."""
    return supervision.MEAN_MONITOR if extra_validation else "val_accuracy"


def adversarial_trainer(model, model_config: ModelConfig, settings: TrainingSettings):
    """The model itself, or with --adversarial the adversarial trainer around it (compiled); a model
    of the options masks its padding, and its attacked review is read with the mask too."""
    from training.adversarial import AdversarialTraining
    from training.model import compile_for_training

    if not settings.adversarial_epsilon:
        return model
    trainer = AdversarialTraining(model, settings.adversarial_epsilon, model_config)
    compile_for_training(
        trainer, settings.learning_rate, settings.clipnorm, settings.ema_momentum, settings.weight_decay
    )
    return trainer


def fit_model(
    split: data.Split,
    epochs: int,
    settings: TrainingSettings,
    config: ModelConfig,
    imdb: bool,
    verbose: int,
    validation: data.Split | None = None,
    extras: supervision.Extras = supervision.Extras(),
) -> Fitted:
    """A new model and vocabulary fitted on `split`, the same seed each time, pretrained on its
    text first if asked; with `validation`, the best epoch's weights are kept."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    texts = text_noun(imdb)
    tokenizer, model, model_config = build_vocabulary_and_model(split, settings, config, texts, verbose)
    token_ids = [tokenizer.token_ids(text) for text in split.texts]
    targets, teacher = distilled_targets(split, settings, config, imdb, verbose)
    pretraining = start_embedding(model, token_ids, model_config, settings, texts, verbose)
    callbacks = training_callbacks(settings, validation is not None, bool(extras.validation))
    if validation is not None and extras.validation:
        callbacks.insert(0, supervision.validation_callback(extras, tokenizer))  # before keep-best reads its logs
    trainer = adversarial_trainer(model, model_config, settings)
    stage(
        f"Training: up to {epochs} epochs on {len(split):,} {texts}"
        + (f", validating on {len(validation):,}" if validation is not None else ""),
        verbose,
    )
    inputs = pad_ids(token_ids, config.sequence_length)
    if extras.training:
        mixture = Mixture(
            inputs,
            targets.astype(np.float32),
            supervision.training_extras(extras, tokenizer, config.num_classes),
            settings.batch_size,
            settings.extra_ratio,
            settings.seed,
        )
        inputs, targets = mixture.dataset(), None
    history = trainer.fit(
        inputs,
        targets,
        epochs=epochs,
        batch_size=None if targets is None else settings.batch_size,
        validation_data=None
        if validation is None
        else (tokenizer.encode(validation.texts), one_hot(validation, config)),
        callbacks=callbacks,
        verbose=verbose,
    ).history
    history = {key: [float(value) for value in values] for key, values in history.items()}
    model.optimizer = trainer.optimizer  # saved with the model: the state that trained it
    if teacher:
        pretraining = {**(pretraining or {}), "teacher": teacher}
    return Fitted(model, tokenizer, history, pretraining, model_config)


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


def test_metrics_record(evaluation: Evaluation) -> dict:
    """The manifest's test figures; the ordinal ones only for labels that are numbers."""
    test_metrics = evaluation.metrics
    return {
        "test_accuracy": evaluation.accuracy,
        "test_loss": evaluation.loss,
        "test_macro_f1": test_metrics["macro_f1"],
        **(
            {
                "test_within_one_accuracy": test_metrics["within_one_accuracy"],
                "test_mean_absolute_error": test_metrics["mean_absolute_error"],
            }
            if "within_one_accuracy" in test_metrics
            else {}
        ),
    }


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
            f"Refitting on all {len(train_split):,} training {text_noun(imdb)} for the {best_epoch + 1} epochs "
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


def build_manifest(
    staging: Path,
    name: str,
    settings: TrainingSettings,
    prepared: PreparedData,
    selection: Selection,
    evaluation: Evaluation,
    reports: list[Path],
) -> bundle.Manifest:
    """The bundle's manifest, for the files already in `staging`."""
    fitted, history, best_epoch = selection.fitted, selection.history, selection.best_epoch
    return bundle.Manifest(
        name=name,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        model_config=fitted.config,
        tokenizer=bundle.TokenizerRecord(
            vocabulary=bundle.FileRecord.of(staging / bundle.VOCABULARY_NAME), words=len(fitted.tokenizer.words)
        ),  # runtime.text's ids and padding
        training=bundle.TrainingRecord(
            settings=asdict(settings),
            data=splits.data_record(
                prepared.dataset,
                prepared.fit,
                prepared.validation,
                prepared.test,
                prepared.test_fraction,
                settings.seed,
            ),
            supervision=supervision.record(prepared.extras),
            library_versions=library_versions(),
            machine=f"{platform.machine()}, {os.cpu_count()} cores",
        ),
        metrics=bundle.MetricsRecord(
            epochs_run=len(history["loss"]),
            best_epoch=best_epoch + 1,
            validation_accuracy=history["val_accuracy"][best_epoch],
            validation_loss=history["val_loss"][best_epoch],
            **test_metrics_record(evaluation),
            test_details=METRICS_NAME,  # per-label figures and the confusion matrix (in reports)
            training_seconds=round(selection.training_seconds, 1),
            seconds_per_epoch=round(selection.selection_seconds / len(history["loss"]), 1),
            refit=bundle.RefitRecord(**selection.refit) if selection.refit else None,
            pretraining=bundle.PretrainingRecord.from_dict(fitted.pretraining),  # and the teacher; None without any
        ),
        reports=[bundle.FileRecord.of(path) for path in reports],  # history and plots: read, not loaded
        artifacts={"keras": bundle.ArtifactRecord.of(staging / "model.keras", format="keras", precision="float32")},
    )


def write_bundle(
    output: Path,
    data_source: str | None,
    name: str,
    settings: TrainingSettings,
    prepared: PreparedData,
    selection: Selection,
    evaluation: Evaluation,
) -> bundle.Manifest:
    """Write the model, vocabulary, reports and manifest; `output` is replaced once they are all written."""
    from training.model_card import write_card
    from training.plots import plot_confusion, plot_history

    fitted = selection.fitted
    with bundle.staging_folder(output, protected=[data_source]) as staging:
        fitted.model.save(staging / "model.keras")
        fitted.tokenizer.save(staging / bundle.VOCABULARY_NAME)
        bundle.write_json(staging / "history.json", selection.history)
        metrics.write_report(
            staging / METRICS_NAME, {"split": "test", "texts": len(prepared.test), **evaluation.metrics}
        )
        confusion = plot_confusion(fitted.config.labels, evaluation.metrics["confusion"]["counts"], staging)
        reports = [
            staging / "history.json",
            *plot_history(selection.history, staging),
            staging / METRICS_NAME,
            *([confusion] if confusion else []),
        ]
        manifest = build_manifest(staging, name, settings, prepared, selection, evaluation, reports)
        bundle.write_manifest(staging, manifest)
        manifest = write_card(staging, manifest)  # MODEL_CARD.md for the data it was trained on
    return manifest


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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def checked_by_config(field: str, convert):
    """An argparse type for a ModelConfig field, whose range ModelConfig checks (the one place)."""

    def parse(text: str):
        value = convert(text)
        try:
            ModelConfig(**{field: value})
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse.__name__ = convert.__name__  # argparse's "invalid float value: ..."
    return parse


dropout_rate = checked_by_config("dropout", float)


def label_list(text: str) -> tuple[str, ...]:
    labels = tuple(label.strip() for label in text.split(","))
    if len(labels) < 2 or not all(labels) or len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(f"expected two or more distinct labels separated by commas, got {text!r}")
    return labels


def vocabulary_size(text: str) -> int:
    value = checked_by_config("vocab_size", int)(text)
    if value <= FIRST_WORD_ID:
        raise argparse.ArgumentTypeError(f"must exceed the {FIRST_WORD_ID} reserved ids, got {text}")
    return value


def bundle_name(text: str) -> str:
    if not NAME_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit), got {text!r}"
        )
    return text


def off_or_positive_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a positive number, got {text}")
    return value


def off_or_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or between 0 and 1, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The labelled texts: where, in what format, which labels, and the test split."""
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="the labelled texts: an aclImdb archive or folder, a folder with one sub-folder of "
        ".txt files per label, a .csv, .tsv or .jsonl file (default: $IMDB_DATA, else "
        "download IMDB's official archive)",
    )
    parser.add_argument(
        "--format", choices=("auto", *sources.FORMATS), default="auto", help="the data's format; auto goes by its name"
    )
    parser.add_argument("--text-column", help="CSV/TSV column or JSON key of the texts (default: text)")
    parser.add_argument("--label-column", help="CSV/TSV column or JSON key of the labels (default: label)")
    parser.add_argument(
        "--split-column",
        metavar="NAME",
        help="column or key saying train or test, used when the data has it (default: split; '' ignores it)",
    )
    parser.add_argument(
        "--labels",
        type=label_list,
        metavar="A,B,...",
        help="the labels in this order (default: the data's, sorted; by value if all are integers)",
    )
    parser.add_argument(
        "--test-split",
        type=fraction,
        metavar="FRACTION",
        help="share of each label held out for the test, for data without its own test split "
        f"(default: {splits.DEFAULT_TEST_SPLIT})",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's vocabulary and how much of each text it reads."""
    parser.add_argument(
        "--vocab-size",
        type=vocabulary_size,
        default=TRAINING_CONFIG.vocab_size,
        help="most ids of the vocabulary: the most frequent training words and 3 reserved ids (fewer when "
        "the training texts have fewer words)",
    )
    parser.add_argument(
        "--sequence-length",
        type=positive_int,
        default=TRAINING_CONFIG.sequence_length,
        help="tokens the model reads of each text (its last ones)",
    )
    parser.add_argument(
        "--embedding-dim",
        type=checked_by_config("embedding_dim", int),
        default=TRAINING_CONFIG.embedding_dim,
        help="the size of each word's vector",
    )
    parser.add_argument(
        "--lstm-units",
        type=checked_by_config("lstm_units", int),
        default=TRAINING_CONFIG.lstm_units,
        help="each LSTM's units",
    )
    add_architecture_arguments(parser)


def add_architecture_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options; without them the model is the seed's one LSTM (exported with padding states)."""
    parser.add_argument(
        "--layers",
        type=checked_by_config("layers", int),
        default=TRAINING_CONFIG.layers,
        help="stacked LSTMs, 1 to 3 (any option but the default masks the padding: docs/architecture.md)",
    )
    parser.add_argument("--bidirectional", action="store_true", help="each LSTM reads the text both ways")
    parser.add_argument(
        "--attention",
        action="store_true",
        help="additive attention pooling over the top LSTM's outputs (padding given no weight) instead of its last one",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the bundle goes and its name."""
    parser.add_argument(
        "--output",
        type=Path,
        help="bundle folder (default: a new runs/imdb-lstm-<UTC time>, or runs/<data name>-<UTC time>)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --output if it is a bundle (only once the new bundle is complete; any other "
        "folder, and the folder holding --data, are refused)",
    )
    parser.add_argument(
        "--name",
        type=bundle_name,
        help="the bundle's name, as the server shows it and puts in its URLs (default: the "
        "data's name, imdb-lstm for IMDB)",
    )


def add_optimizer_arguments(parser: argparse.ArgumentParser, defaults: TrainingSettings) -> None:
    """How long and how fast the model trains."""
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="most epochs to train")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="reviews per step")
    parser.add_argument(
        "--learning-rate", type=positive_float, default=defaults.learning_rate, help="Adam's learning rate"
    )
    parser.add_argument(
        "--clipnorm", type=positive_float, default=defaults.clipnorm, help="clip each gradient to this norm"
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=defaults.patience,
        help="epochs without a better validation accuracy before stopping",
    )
    parser.add_argument(
        "--lr-decay",
        type=fraction,
        default=defaults.lr_decay,
        help="multiply the learning rate by this after an epoch that does not improve validation accuracy",
    )
    parser.add_argument(
        "--ema",
        type=fraction,
        default=defaults.ema_momentum,
        metavar="MOMENTUM",
        help="validate and keep an exponential moving average of the weights",
    )
    parser.add_argument(
        "--weight-decay",
        type=positive_float,
        default=defaults.weight_decay,
        help="Adam's decoupled weight decay, e.g. 0.05 (none by default)",
    )


def add_supervision_arguments(parser: argparse.ArgumentParser, defaults: TrainingSettings) -> None:
    """Extra supervision mixed into the main data (training/supervision.py, docs/training.md)."""
    parser.add_argument(
        "--phrases",
        metavar="TREES",
        help="labelled phrase trees in the Stanford Sentiment Treebank's format: every non-neutral "
        "phrase becomes a short training text",
    )
    parser.add_argument(
        "--pairs",
        metavar="TSV",
        help="counterfactual pairs (Sentiment, Text, batch_id columns): both texts of a pair train in one batch",
    )
    parser.add_argument(
        "--phrases-validation",
        metavar="TREES",
        help="phrase trees whose sentences are validated each epoch; the epoch is chosen on the mean "
        "of every validation accuracy",
    )
    parser.add_argument(
        "--pairs-validation", metavar="TSV", help="counterfactual pairs validated each epoch, as --phrases-validation"
    )
    parser.add_argument(
        "--extra-ratio",
        type=positive_float,
        default=defaults.extra_ratio,
        metavar="R",
        help="extra texts an epoch per main text, drawn anew each epoch (default: every extra text once an epoch)",
    )


def add_method_arguments(parser: argparse.ArgumentParser, defaults: TrainingSettings) -> None:
    """Refitting, pretraining and regularisation."""
    parser.add_argument(
        "--refit",
        action="store_true",
        help="after validation, retrain on all training reviews for the chosen epochs and write that unvalidated model",
    )
    parser.add_argument(
        "--pretrain-epochs",
        type=non_negative_int,
        default=defaults.pretrain_epochs,
        metavar="N",
        help="first train the embedding and LSTM as a language model on the fit reviews' text for N epochs",
    )
    parser.add_argument(
        "--word2vec-epochs",
        type=non_negative_int,
        default=defaults.word2vec_epochs,
        metavar="N",
        help="start the embedding from word2vec vectors trained for N epochs on the fit "
        "reviews' text (0 starts it at random)",
    )
    parser.add_argument(
        "--adversarial",
        type=off_or_positive_float,
        default=defaults.adversarial_epsilon,
        metavar="EPSILON",
        help="adversarial training: also fit each batch with its embedded words moved EPSILON "
        "(L2, per text) in the direction that hurts most (Miyato et al. 2017); 0 turns it off, "
        "and an epoch then takes about a third of the time",
    )
    parser.add_argument(
        "--distill",
        type=off_or_fraction,
        default=defaults.distill_weight,
        metavar="WEIGHT",
        help="targets are (1 - WEIGHT) x the label + WEIGHT x an n-gram teacher's out-of-fold "
        "probabilities; 0 trains on the labels alone",
    )
    parser.add_argument(
        "--dropout",
        type=dropout_rate,
        default=TRAINING_CONFIG.dropout,
        help="the LSTM's dropout on its inputs, the embedded words",
    )
    parser.add_argument(
        "--recurrent-dropout",
        type=dropout_rate,
        default=TRAINING_CONFIG.recurrent_dropout,
        help="the LSTM's dropout on its state",
    )


def add_run_arguments(parser: argparse.ArgumentParser, defaults: TrainingSettings) -> None:
    """Validation, seed, quick runs and what is shown."""
    parser.add_argument(
        "--validation-split",
        type=fraction,
        default=defaults.validation_split,
        help="share of the training reviews that validates",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the splits, weights and shuffling")
    parser.add_argument("--limit", type=positive_int, help="use only N reviews of each split (quick runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines or Keras progress bars")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m training.fit`."""
    defaults = TrainingSettings()
    parser = cli.parser("training.fit", __doc__.split("\n")[0])
    add_data_arguments(parser)
    add_model_arguments(parser)
    add_output_arguments(parser)
    add_optimizer_arguments(parser, defaults)
    add_method_arguments(parser, defaults)
    add_supervision_arguments(parser, defaults)
    add_run_arguments(parser, defaults)
    return parser


def settings_from(args: argparse.Namespace) -> TrainingSettings:
    return TrainingSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm,
        patience=args.patience,
        lr_decay=args.lr_decay,
        ema_momentum=args.ema,
        weight_decay=args.weight_decay,
        refit=args.refit,
        pretrain_epochs=args.pretrain_epochs,
        word2vec_epochs=args.word2vec_epochs,
        adversarial_epsilon=args.adversarial,
        distill_weight=args.distill,
        phrases=args.phrases,
        pairs=args.pairs,
        phrases_validation=args.phrases_validation,
        pairs_validation=args.pairs_validation,
        extra_ratio=args.extra_ratio,
        validation_split=args.validation_split,
        seed=args.seed,
        limit=args.limit,
    )


def data_options_from(args: argparse.Namespace) -> sources.DataOptions:
    return sources.DataOptions(
        format=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        split_column=args.split_column,
        labels=args.labels,
    )


def config_from(args: argparse.Namespace) -> ModelConfig:
    return replace(
        TRAINING_CONFIG,
        dropout=args.dropout,
        recurrent_dropout=args.recurrent_dropout,
        vocab_size=args.vocab_size,
        sequence_length=args.sequence_length,
        embedding_dim=args.embedding_dim,
        lstm_units=args.lstm_units,
        layers=args.layers,
        bidirectional=args.bidirectional,
        attention=args.attention,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet(args.verbose)
    settings = settings_from(args)
    data_options = data_options_from(args)
    try:
        config = config_from(args)
        train(
            args.data,
            args.output or default_output(args.data, args.format),
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
