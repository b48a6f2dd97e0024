"""Small labelled datasets in every format training.sources reads, built on the fly.

Each label has its own cue words among shared filler words, so a model learns them from a few
dozen examples; label names and texts include non-ASCII ones.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

FILLER = "the film story actor plot scene director movie character music".split()
FIVE_LABELS = {
    "très bien": "superbe magnifique génial",
    "schlecht": "übel schrecklich langweilig",
    "нейтрально": "обычный средний нормальный",
    "良い": "素晴らしい 最高 楽しい",
    "ok": "fine decent alright",
}
TWO_LABELS = {"ja": "gut toll prima", "nein": "mies öde dürftig"}


def examples(labels: dict[str, str], per_label: int, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs, labels interleaved: a third of each text's words are its label's cues."""
    rng = random.Random(seed)
    rows = []
    for index in range(per_label * len(labels)):
        label = list(labels)[index % len(labels)]
        cues = labels[label].split()
        words = [rng.choice(cues) if k % 3 == 0 else rng.choice(FILLER) for k in range(8 + index % 15)]
        rows.append((" ".join(words).capitalize() + ".", label))
    return rows


def cue_text(labels: dict[str, str], label: str) -> str:
    """A new text made of the label's cue words, for classifying."""
    return f"The {labels[label]} film, {labels[label]}."


def write_csv(
    path: Path, rows, columns=("text", "label"), delimiter: str = ",", bom: bool = False, extra: list | None = None
) -> Path:
    """A header and one row a (text, label[, split]) tuple, in the columns named (an "id" column first)."""
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["id", *columns])
        for index, row in enumerate(rows):
            writer.writerow([index, *row])
        for row in extra or []:
            writer.writerow(row)
    return path


def write_jsonl(path: Path, rows, keys=("text", "label")) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(dict(zip(keys, row)), ensure_ascii=False) + "\n")
    return path


def write_folders(root: Path, rows, splits: bool = False) -> Path:
    """root/<label>/<n>.txt, or with `splits` root/{train,test}/<label>/<n>.txt (every 4th row tests)."""
    for index, (text, label) in enumerate(rows):
        folder = root / ("test" if index % 4 == 3 else "train") if splits else root
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{index:04d}.txt").write_text(text, encoding="utf-8")
    return root
