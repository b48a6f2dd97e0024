"""The table of training runs: one compact JSON line a run, in docs/tuning/runs.jsonl.

    python scripts/training_runs.py add runs/adv-distill/imdb-lstm --run adversarial+distill [--note "..."]
    python scripts/update_readme.py          # renders the table in docs/training.md

A run's row keeps the figures the table needs, not its whole manifest: the settings that differ from
`training.fit`'s defaults of the time, the command that repeats it, validation accuracy after every
epoch, the epoch kept, the one reading of the test set, the time it took, and its score on the
negation-and-contrast challenge set (datasets/negation-contrast), read from the bundle's Keras model
when the bundle still has one. Every reading of the test set and of the challenge set is a row here,
so a reader can count how often they were looked at.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime import bundle  # noqa: E402
from runtime.config import ModelConfig  # noqa: E402
from training.settings import TrainingSettings  # noqa: E402

RUNS = ROOT / "docs" / "tuning" / "runs.jsonl"
DATA = "../shared/data/aclImdb_labeled.tar.gz"
# training.fit's flag for each recorded setting (settings not listed have no flag of their own).
FLAGS = {
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "learning_rate": "--learning-rate",
    "clipnorm": "--clipnorm",
    "patience": "--patience",
    "lr_decay": "--lr-decay",
    "ema_momentum": "--ema",
    "weight_decay": "--weight-decay",
    "pretrain_epochs": "--pretrain-epochs",
    "word2vec_epochs": "--word2vec-epochs",
    "adversarial_epsilon": "--adversarial",
    "distill_weight": "--distill",
    "validation_split": "--validation-split",
    "seed": "--seed",
    "limit": "--limit",
    "dropout": "--dropout",
    "recurrent_dropout": "--recurrent-dropout",
}


def command(settings: TrainingSettings, config: ModelConfig) -> str:
    """The training.fit command that repeats a run, every recorded setting spelled out (a 0 too: it
    may turn off a default) and the model's sizes and options where they differ from the seed's."""
    values = {**asdict(settings), "dropout": config.dropout, "recurrent_dropout": config.recurrent_dropout}
    parts = ["python -m training.fit", f"--data {DATA}"]
    for key, flag in FLAGS.items():
        value = values.get(key)
        if value is not None and not isinstance(value, bool):
            parts.append(f"{flag} {value}")
    if settings.refit:
        parts.append("--refit")
    seed = ModelConfig()
    for key in ("vocab_size", "sequence_length", "embedding_dim", "lstm_units", "layers"):
        if getattr(config, key) != getattr(seed, key):
            parts.append(f"--{key.replace('_', '-')} {getattr(config, key)}")
    parts += [f"--{key}" for key in ("bidirectional", "attention") if getattr(config, key)]
    return " ".join(parts)


def changed(settings: TrainingSettings, config: ModelConfig) -> dict:
    """The settings a reader compares rows by: what differs from the original Keras example's."""
    seed = ModelConfig().to_dict()
    shown = {key: value for key, value in config.to_dict().items() if key != "labels" and seed.get(key) != value}
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
    from runtime.text import Tokenizer
    from scripts.challenge_set import load_reviews
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
        "note": note,
    }


def load(path: Path = RUNS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def add(row: dict, path: Path = RUNS) -> None:
    """Append a row, or replace the row of the same run."""
    rows = [existing for existing in load(path) if existing["run"] != row["run"]] + [row]
    path.write_text("".join(json.dumps(existing, ensure_ascii=False) + "\n" for existing in rows))


def percent(value: float | None) -> str:
    """An accuracy as the tables show it; a dash for a reading not taken."""
    return "—" if value is None else f"{value * 100:.2f} %"


def table(rows: list[dict], shipped: str) -> str:
    """The markdown table of docs/training.md, the shipped run first."""
    lines = [
        "| run | trained (UTC) | settings | validation | best validation (epoch) | test | challenge set | "
        "minutes | note | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda row: (row["run"] != shipped, row["trained"])):
        settings = ", ".join(f"{key} {value}" for key, value in row["settings"].items())
        best = row["validation_accuracy"][row["best_epoch"] - 1]
        name = f"**{row['run']}** (shipped)" if row["run"] == shipped else row["run"]
        lines.append(
            f"| {name} | {row['trained']} | {settings} | {row['validation']} | {percent(best)} "
            f"({row['best_epoch']} of {len(row['validation_accuracy'])}) | {percent(row['test_accuracy'])} | "
            f"{percent(row['challenge_accuracy'])} | {row['training_minutes']} | {row['note']} | `{row['command']}` |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/training_runs.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    adding = commands.add_parser("add", help="add (or replace) a run's row from its bundle folder")
    adding.add_argument("folder", type=Path)
    adding.add_argument("--run", required=True, help="the run's name in the table")
    adding.add_argument("--note", default="", help="what the run shows, in a few words")
    args = parser.parse_args(argv)
    add(compact(args.folder, args.run, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
