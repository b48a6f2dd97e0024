"""One training run's row, as docs/tuning/runs.jsonl keeps it (scripts/training_runs.py) and the
options table shows it (benchmarks.options): read from the run's bundle folder.

A row keeps the figures the table needs, not the whole manifest: the settings that differ from the
original example's, the command that repeats the run, validation accuracy after every epoch, the
epoch kept, the one reading of the test set, the time it took, and the score on the
negation-and-contrast challenge set when the bundle still has its Keras model.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, fields
from pathlib import Path

from runtime import bundle
from runtime.config import ModelConfig
from training import cli
from training.settings import TrainingSettings

DATA = "../shared/data/aclImdb_labeled.tar.gz"
# The model's dropouts are spelled out in every command, like the settings; its other fields only
# where they differ from the seed's.
ALWAYS_SPELLED = ("dropout", "recurrent_dropout")
EXTRA_VALIDATION = ("val_phrases_accuracy", "val_pairs_accuracy")
SEED_MODEL = ModelConfig().to_dict()  # the seed's model fields, as a manifest records them


def command(settings: TrainingSettings, config: ModelConfig) -> str:
    """The training.fit command that repeats a run, every recorded setting spelled out (a 0 too: it
    may turn off a default) and the model's sizes and options where they differ from the seed's.
    The flags come from training.cli's table, so a new setting is spelled out with no change here."""
    spelled = [(cli.option_for("settings", item.name), getattr(settings, item.name)) for item in fields(settings)]
    spelled += [(cli.option_for("config", name), getattr(config, name)) for name in ALWAYS_SPELLED]
    parts = ["python -m training.fit", f"--data {DATA}"]
    parts += [
        f"{option.flag} {shlex.quote(str(value))}"
        for option, value in spelled
        if not option.switch and value is not None
    ]
    parts += [option.flag for option, value in spelled if option.switch and value]
    seed = ModelConfig()
    for option in cli.FIT_OPTIONS:
        value = getattr(config, option.field, None)
        if option.target != "config" or option.field in ALWAYS_SPELLED or value == getattr(seed, option.field):
            continue
        parts.append(option.flag if option.switch else f"{option.flag} {value}")
    return " ".join(parts)


def changed(settings: TrainingSettings, config: ModelConfig) -> dict:
    """The settings a reader compares rows by: what differs from the original Keras example's."""
    shown = {key: value for key, value in config.to_dict().items() if key != "labels" and SEED_MODEL.get(key) != value}
    shown.update(
        {
            key: value
            for key, value in asdict(settings).items()
            if key not in ("limit", "refit", "seed", "validation_split") and value not in (None, 0, False)
        }
    )
    return shown


def challenge_accuracy(folder: Path) -> float | None:
    """The bundle's Keras model on the challenge set, or None without a Keras model."""
    if not (folder / "model.keras").is_file():
        return None
    from benchmarks.challenge_reviews import load_reviews
    from runtime.text import Tokenizer
    from training.model import load_model  # knows the options' own layers (attention)

    config = bundle.Manifest.read(folder).model_config
    tokenizer = Tokenizer.load(folder / bundle.VOCABULARY_NAME, config.sequence_length)
    reviews = load_reviews()
    model = load_model(folder / "model.keras")
    predicted = model.predict(tokenizer.encode([review.text for review in reviews]), verbose=0).argmax(axis=1)
    right = sum(config.labels[int(p)] == review.label for p, review in zip(predicted, reviews))
    return round(right / len(reviews), 4)


def compact(folder: Path, run: str, note: str = "") -> dict:
    """One run's row, from its bundle folder (manifest.json and history.json)."""
    manifest = bundle.Manifest.read(folder)  # the one reader, with its checks
    history = json.loads((folder / "history.json").read_text())
    metrics, data = manifest.metrics, manifest.training.data
    settings, config = TrainingSettings.from_record(manifest.training.settings), manifest.model_config
    return {
        "run": run,
        "trained": manifest.created[:16].replace("T", " "),
        "settings": changed(settings, config),
        "command": command(settings, config),
        "validation": f"blocks of {data.validation_block_ids} ids" if data.validation_block_ids else "single reviews",
        "validation_accuracy": [round(value, 4) for value in history["val_accuracy"]],
        "best_epoch": metrics.best_epoch,
        "weights": f"refit on {metrics.refit.reviews:,} reviews" if metrics.refit else "the validated epoch's",
        "test_accuracy": round(metrics.test_accuracy, 4),
        "test_loss": round(metrics.test_loss, 4),
        "training_minutes": round(metrics.training_seconds / 60, 1),
        "challenge_accuracy": challenge_accuracy(folder),
        # The extra validation sets (training.supervision), per epoch, and what each extra source read.
        **{key: [round(value, 4) for value in history[key]] for key in EXTRA_VALIDATION if key in history},
        **({"supervision": supervision(manifest)} if manifest.training.supervision else {}),
        "note": note,
    }


def supervision(manifest: bundle.Manifest) -> dict:
    """Each extra source a run read: its file and how many texts."""
    record = manifest.training.supervision
    return {
        name: f"{source.source} ({source.texts:,} texts)"
        for name in record.NESTED
        if (source := getattr(record, name)) is not None
    }


def percent(value: float | None) -> str:
    """An accuracy as the tables show it; a dash for a reading not taken."""
    return "—" if value is None else f"{value * 100:.2f} %"
