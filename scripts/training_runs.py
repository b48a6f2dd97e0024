"""The table of training runs: one compact JSON line a run, in docs/tuning/runs.jsonl.

    python scripts/training_runs.py add runs/adv-distill/imdb-lstm --run adversarial+distill [--note "..."]
    python scripts/training_runs.py add runs/ablation-no-teacher --run ablation-no-teacher --ablation
    python scripts/update_readme.py          # renders the tables in docs/training.md

A run's row keeps the figures the table needs, not its whole manifest: the settings that differ from
`training.fit`'s defaults of the time, the command that repeats it, validation accuracy after every
epoch, the epoch kept, the one reading of the test set, the time it took, and its score on the
negation-and-contrast challenge set (datasets/negation-contrast), read from the bundle's Keras model
when the bundle still has one. Every reading of the test set and of the challenge set is a row here,
so a reader can count how often they were looked at. Rows added with --ablation also form the
ablation table: each against ABLATION_BASE, chosen on validation only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.runs import EXTRA_VALIDATION, SEED_MODEL, command, compact, percent  # noqa: E402  (the row of one run)

# command: the row's, from training.cli
__all__ = ["command", "compact", "load", "add", "table", "ablation_table", "main"]

RUNS = ROOT / "docs" / "tuning" / "runs.jsonl"
ABLATION_BASE = "ablation-both"  # the recipe every ablation row is compared with


def load(path: Path = RUNS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def add(row: dict, path: Path = RUNS) -> None:
    """Append a row, or replace the row of the same run."""
    rows = [existing for existing in load(path) if existing["run"] != row["run"]] + [row]
    path.write_text("".join(json.dumps(existing, ensure_ascii=False) + "\n" for existing in rows))


def table(rows: list[dict], shipped: str) -> str:
    """The markdown table of docs/training.md, the shipped run first."""
    lines = [
        "| run | trained (UTC) | settings | validation | best validation (epoch) | SST-2 dev / CAD dev "
        "(same epoch) | test | challenge set | minutes | note | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda row: (row["run"] != shipped, row["trained"])):
        settings = ", ".join(f"{key} {value}" for key, value in row["settings"].items())
        best = row["validation_accuracy"][row["best_epoch"] - 1]
        name = f"**{row['run']}** (shipped)" if row["run"] == shipped else row["run"]
        sentences = " / ".join(
            percent(row[key][row["best_epoch"] - 1]) if key in row else "—" for key in EXTRA_VALIDATION
        )
        lines.append(
            f"| {name} | {row['trained']} | {settings} | {row['validation']} | {percent(best)} "
            f"({row['best_epoch']} of {len(row['validation_accuracy'])}) | {sentences} | {percent(row['test_accuracy'])} | "
            f"{percent(row['challenge_accuracy'])} | {row['training_minutes']} | {row['note']} | `{row['command']}` |"
        )
    return "\n".join(lines)


def differences(row: dict, base: dict) -> str:
    """What a row's settings change from the base row's, in a few words."""
    ours, theirs = row["settings"], base["settings"]
    changes = [f"seed {seed_of(row)}"] if seed_of(row) != seed_of(base) else []
    # A key missing from a row's settings is off, or for a model field at the seed's value.
    changes += [
        f"{key} {SEED_MODEL[key]} (the seed's)" if key in SEED_MODEL else f"without {key}"
        for key in theirs
        if key not in ours
    ]
    changes += [f"{key} {value}" for key, value in ours.items() if theirs.get(key) != value]
    return ", ".join(changes) or "the base recipe"


def seed_of(row: dict) -> str | None:
    """The run's --seed, read from its command (the settings column leaves the seed out)."""
    words = shlex.split(row["command"])
    return words[words.index("--seed") + 1] if "--seed" in words else None


def validation_mean(row: dict) -> float:
    """The mean of every validation accuracy at the kept epoch: what chose that epoch."""
    epoch = row["best_epoch"] - 1
    readings = [row["validation_accuracy"][epoch]] + [row[key][epoch] for key in EXTRA_VALIDATION if key in row]
    return sum(readings) / len(readings)


def ablation_table(rows: list[dict], base: str = ABLATION_BASE) -> str | None:
    """The ablation rows side by side, each against the base; the best validation mean in bold.
    None until the base row is in the table."""
    ablations = [row for row in rows if row.get("ablation")]
    reference = next((row for row in ablations if row["run"] == base), None)
    if reference is None:
        return None
    best = max(validation_mean(row) for row in ablations)
    lines = [
        f"| run | differs from {base} | epoch kept | IMDB blocks | SST-2 dev | CAD dev | validation mean "
        "| IMDB test | challenge set | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(ablations, key=lambda row: (row["run"] != base, row["trained"])):
        epoch, mean = row["best_epoch"] - 1, validation_mean(row)
        extra = [percent(row[key][epoch]) if key in row else "—" for key in EXTRA_VALIDATION]
        shown = f"**{percent(mean)}**" if mean == best else percent(mean)
        lines.append(
            f"| {row['run']} | {differences(row, reference)} | {epoch + 1} of {len(row['validation_accuracy'])} "
            f"| {percent(row['validation_accuracy'][epoch])} | {' | '.join(extra)} | {shown} "
            f"| {percent(row['test_accuracy'])} | {percent(row['challenge_accuracy'])} | {row['training_minutes']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/training_runs.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    adding = commands.add_parser("add", help="add (or replace) a run's row from its bundle folder")
    adding.add_argument("folder", type=Path)
    adding.add_argument("--run", required=True, help="the run's name in the table")
    adding.add_argument("--note", default="", help="what the run shows, in a few words")
    adding.add_argument(
        "--ablation", action="store_true", help=f"a row of the ablation table (against {ABLATION_BASE})"
    )
    args = parser.parse_args(argv)
    add({**compact(args.folder, args.run, args.note), **({"ablation": True} if args.ablation else {})})
    return 0


if __name__ == "__main__":
    sys.exit(main())
