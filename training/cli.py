"""The one table of training options: every flag of `python -m training.fit`, the setting it fills
and its help. It builds fit's parser, the shared part of training.tune's, and the command that
repeats a run (benchmarks.runs, for scripts/training_runs.py), so an option added here reaches all three.

A row's `target` says which record the value goes to: `settings` (TrainingSettings), `config`
(ModelConfig), `data` (sources.DataOptions) or `run` (what only the command line uses: --data,
--output, --quiet, ...). Every TrainingSettings field must have a row (checked on import).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID
from training import sources, splits
from training.settings import TrainingSettings

# The seed's model, trained with more dropout on the LSTM's inputs than the seed's 0.2: 0.5 won on
# validation (README, "Training"). Dropout is off at inference, so the exported graphs are the same.
TRAINING_CONFIG = ModelConfig(dropout=0.5)
SETTINGS = TrainingSettings()  # the settings' defaults, the table's
# A bundle's name, which the Open Inference Protocol puts in URLs (/v2/models/NAME).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


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


@dataclass(frozen=True)
class Option:
    """One flag: the record field it fills (`target`.`field`) and how argparse reads it."""

    flag: str
    target: str  # settings, config, data or run
    field: str
    help: str
    type: object = None  # an argparse type; None with `switch` or for a string
    default: object = None
    metavar: str | None = None
    switch: bool = False  # a store_true flag
    choices: tuple | None = None
    environment: str | None = None  # the default is this environment variable, read when the parser is built

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.switch:
            parser.add_argument(self.flag, dest=self.field, action="store_true", help=self.help)
            return
        extra = {key: value for key, value in (("type", self.type), ("metavar", self.metavar)) if value is not None}
        if self.choices is not None:
            extra["choices"] = self.choices
        default = os.environ.get(self.environment) if self.environment else self.default
        parser.add_argument(self.flag, dest=self.field, default=default, help=self.help, **extra)


def setting(flag, field, help, type=None, metavar=None, switch=False) -> Option:
    """A TrainingSettings option, defaulting to the field's default."""
    return Option(flag, "settings", field, help, type, getattr(SETTINGS, field), metavar, switch)


def model(flag, field, help, type=None, switch=False) -> Option:
    """A ModelConfig option, defaulting to the training model's value."""
    return Option(flag, "config", field, help, type, getattr(TRAINING_CONFIG, field), switch=switch)


DATA_OPTIONS = (
    Option(
        "--data",
        "run",
        "data",
        "the labelled texts: an aclImdb archive or folder, a folder with one sub-folder of "
        ".txt files per label, a .csv, .tsv or .jsonl file (default: $IMDB_DATA, else "
        "download IMDB's official archive)",
        environment="IMDB_DATA",
    ),
    Option(
        "--format",
        "data",
        "format",
        "the data's format; auto goes by its name",
        default="auto",
        choices=("auto", *sources.FORMATS),
    ),
    Option("--text-column", "data", "text_column", "CSV/TSV column or JSON key of the texts (default: text)"),
    Option("--label-column", "data", "label_column", "CSV/TSV column or JSON key of the labels (default: label)"),
    Option(
        "--split-column",
        "data",
        "split_column",
        "column or key saying train or test, used when the data has it (default: split; '' ignores it)",
        metavar="NAME",
    ),
    Option(
        "--labels",
        "data",
        "labels",
        "the labels in this order (default: the data's, sorted; by value if all are integers)",
        type=label_list,
        metavar="A,B,...",
    ),
    Option(
        "--test-split",
        "run",
        "test_split",
        "share of each label held out for the test, for data without its own test split "
        f"(default: {splits.DEFAULT_TEST_SPLIT})",
        type=fraction,
        metavar="FRACTION",
    ),
)
SIZE_OPTIONS = (
    model(
        "--vocab-size",
        "vocab_size",
        "most ids of the vocabulary: the most frequent training words and 3 reserved ids (fewer when "
        "the training texts have fewer words)",
        vocabulary_size,
    ),
    model("--sequence-length", "sequence_length", "tokens the model reads of each text (its last ones)", positive_int),
)
MODEL_OPTIONS = (
    model(
        "--embedding-dim", "embedding_dim", "the size of each word's vector", checked_by_config("embedding_dim", int)
    ),
    model("--lstm-units", "lstm_units", "each LSTM's units", checked_by_config("lstm_units", int)),
    # The model options; without them the model is the seed's one LSTM (exported with padding states).
    model(
        "--layers",
        "layers",
        "stacked LSTMs, 1 to 3 (any option but the default masks the padding: docs/architecture.md)",
        checked_by_config("layers", int),
    ),
    model("--bidirectional", "bidirectional", "each LSTM reads the text both ways", switch=True),
    model(
        "--attention",
        "attention",
        "additive attention pooling over the top LSTM's outputs (padding given no weight) instead of its last one",
        switch=True,
    ),
)
OUTPUT_OPTIONS = (
    Option(
        "--output",
        "run",
        "output",
        "bundle folder (default: a new runs/imdb-lstm-<UTC time>, or runs/<data name>-<UTC time>)",
        type=Path,
    ),
    Option(
        "--overwrite",
        "run",
        "overwrite",
        "replace --output if it is a bundle (only once the new bundle is complete; any other "
        "folder, and the folder holding --data, are refused)",
        switch=True,
    ),
    Option(
        "--name",
        "run",
        "name",
        "the bundle's name, as the server shows it and puts in its URLs (default: the data's name, imdb-lstm for IMDB)",
        type=bundle_name,
    ),
)
OPTIMIZER_OPTIONS = (
    setting("--epochs", "epochs", "most epochs to train", positive_int),
    setting("--batch-size", "batch_size", "reviews per step", positive_int),
    setting("--learning-rate", "learning_rate", "Adam's learning rate", positive_float),
    setting("--clipnorm", "clipnorm", "clip each gradient to this norm", positive_float),
)
PATIENCE = setting(
    "--patience", "patience", "epochs without a better validation accuracy before stopping", positive_int
)
SCHEDULE_OPTIONS = (
    setting(
        "--lr-decay",
        "lr_decay",
        "multiply the learning rate by this after an epoch that does not improve validation accuracy",
        fraction,
    ),
    setting(
        "--ema",
        "ema_momentum",
        "validate and keep an exponential moving average of the weights",
        fraction,
        metavar="MOMENTUM",
    ),
    setting(
        "--weight-decay", "weight_decay", "Adam's decoupled weight decay, e.g. 0.05 (none by default)", positive_float
    ),
)
METHOD_OPTIONS = (
    setting(
        "--refit",
        "refit",
        "after validation, retrain on all training reviews for the chosen epochs and write that unvalidated model",
        switch=True,
    ),
    setting(
        "--pretrain-epochs",
        "pretrain_epochs",
        "first train the embedding and LSTM as a language model on the fit reviews' text for N epochs",
        non_negative_int,
        metavar="N",
    ),
)
WORD2VEC = setting(
    "--word2vec-epochs",
    "word2vec_epochs",
    "start the embedding from word2vec vectors trained for N epochs on the fit reviews' text (0 starts it at random)",
    non_negative_int,
    metavar="N",
)
REGULARISATION_OPTIONS = (
    setting(
        "--adversarial",
        "adversarial_epsilon",
        "adversarial training: also fit each batch with its embedded words moved EPSILON "
        "(L2, per text) in the direction that hurts most (Miyato et al. 2017); 0 turns it off, "
        "and an epoch then takes about a third of the time",
        off_or_positive_float,
        metavar="EPSILON",
    ),
    setting(
        "--distill",
        "distill_weight",
        "targets are (1 - WEIGHT) x the label + WEIGHT x an n-gram teacher's out-of-fold "
        "probabilities; 0 trains on the labels alone",
        off_or_fraction,
        metavar="WEIGHT",
    ),
    model("--dropout", "dropout", "the LSTM's dropout on its inputs, the embedded words", dropout_rate),
)
RECURRENT_DROPOUT = model("--recurrent-dropout", "recurrent_dropout", "the LSTM's dropout on its state", dropout_rate)
# Extra supervision mixed into the main data (training/supervision.py, docs/training.md).
SUPERVISION_OPTIONS = (
    setting(
        "--phrases",
        "phrases",
        "labelled phrase trees in the Stanford Sentiment Treebank's format: every non-neutral "
        "phrase becomes a short training text",
        metavar="TREES",
    ),
    setting(
        "--pairs",
        "pairs",
        "counterfactual pairs (Sentiment, Text, batch_id columns): both texts of a pair train in one batch",
        metavar="TSV",
    ),
    setting(
        "--phrases-validation",
        "phrases_validation",
        "phrase trees whose sentences are validated each epoch; the epoch is chosen on the mean "
        "of every validation accuracy",
        metavar="TREES",
    ),
    setting(
        "--pairs-validation",
        "pairs_validation",
        "counterfactual pairs validated each epoch, as --phrases-validation",
        metavar="TSV",
    ),
    setting(
        "--extra-ratio",
        "extra_ratio",
        "extra texts an epoch per main text, drawn anew each epoch (default: every extra text once an epoch)",
        positive_float,
        metavar="R",
    ),
)
VALIDATION_SPLIT = setting(
    "--validation-split", "validation_split", "share of the training reviews that validates", fraction
)
RUN_OPTIONS = (
    VALIDATION_SPLIT,
    setting("--seed", "seed", "seed of the splits, weights and shuffling", int),
    setting("--limit", "limit", "use only N reviews of each split (quick runs)", positive_int),
    Option("--quiet", "run", "quiet", "no progress lines or Keras progress bars", switch=True),
    Option("--verbose", "run", "verbose", "show TensorFlow's log lines", switch=True),
)

# training.fit's options, in the order --help lists them.
FIT_OPTIONS = (
    *DATA_OPTIONS,
    *SIZE_OPTIONS,
    *MODEL_OPTIONS,
    *OUTPUT_OPTIONS,
    *OPTIMIZER_OPTIONS,
    PATIENCE,
    *SCHEDULE_OPTIONS,
    *METHOD_OPTIONS,
    WORD2VEC,
    *REGULARISATION_OPTIONS,
    RECURRENT_DROPOUT,
    *SUPERVISION_OPTIONS,
    *RUN_OPTIONS,
)
# The settings every trial of training.tune shares (it searches the others: tune.SPACE).
TUNE_FIXED_OPTIONS = (*SIZE_OPTIONS, RECURRENT_DROPOUT, WORD2VEC, PATIENCE, VALIDATION_SPLIT)


def option_for(target: str, field: str) -> Option:
    """The row of a record's field."""
    return next(option for option in FIT_OPTIONS if option.target == target and option.field == field)


def add_options(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    for option in options:
        option.add_to(parser)


def settings_from(args: argparse.Namespace, options: tuple[Option, ...] = FIT_OPTIONS) -> TrainingSettings:
    """The settings that `options` parsed into `args`; the others keep their defaults."""
    return TrainingSettings(**values(args, options, "settings"))


def config_from(args: argparse.Namespace, options: tuple[Option, ...] = FIT_OPTIONS) -> ModelConfig:
    return replace(TRAINING_CONFIG, **values(args, options, "config"))


def data_options_from(args: argparse.Namespace) -> sources.DataOptions:
    return sources.DataOptions(**values(args, DATA_OPTIONS, "data"))


def values(args: argparse.Namespace, options: tuple[Option, ...], target: str) -> dict:
    return {option.field: getattr(args, option.field) for option in options if option.target == target}


def check_table() -> None:
    """Every setting has a flag: a field added to TrainingSettings without a row fails on import."""
    covered = {option.field for option in FIT_OPTIONS if option.target == "settings"}
    missing = [item.name for item in fields(TrainingSettings) if item.name not in covered]
    if missing:
        raise RuntimeError(f"training/cli.py has no option for the settings {', '.join(missing)}")


check_table()
