"""Counterfactual pairs: a text next to its revision with the fewest edits that flip its label.

The format of Kaushik, Hovy & Lipton's counterfactually-augmented IMDB data (ICLR 2020): a TSV with
a header naming `Sentiment`, `Text` and `batch_id`; the two texts of a pair are consecutive rows
with the same `batch_id` and different labels. Labels are matched to the main data's by name,
ignoring case ("Positive" is IMDB's "positive"). Training puts both sides of a pair in one batch,
so each step sees exactly what changed the label.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.bundle import sha256_file
from training.data import DataError, Split
from training.limits import MAX_TEXT_BYTES

COLUMNS = ("Sentiment", "Text", "batch_id")
CITATION = (
    "Kaushik, Hovy and Lipton (2020), Learning the Difference that Makes a Difference with "
    "Counterfactually-Augmented Data, ICLR (data: Apache-2.0)"
)


@dataclass(frozen=True)
class PairFile:
    """A pair file read: texts 2k and 2k+1 are a pair with different labels."""

    path: str
    sha256: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]  # as written in the file


def read_pairs(path: str | Path) -> PairFile:
    """The pairs of a TSV; a missing column, a lone row or a pair with one label refuses the file."""
    path = Path(path)
    csv.field_size_limit(max(csv.field_size_limit(), MAX_TEXT_BYTES))
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read the pairs {path}: {error}") from None
    if not rows or any(column not in rows[0] for column in COLUMNS):
        raise DataError(f"{path}: a pair file's header names {', '.join(COLUMNS)}")
    if len(rows) % 2:
        raise DataError(f"{path}: {len(rows)} rows; pairs are two consecutive rows")
    for first in range(0, len(rows), 2):
        one, other = rows[first], rows[first + 1]
        if one["batch_id"] != other["batch_id"] or one["Sentiment"] == other["Sentiment"]:
            raise DataError(
                f"{path}, rows {first + 2}-{first + 3}: a pair is two rows with one batch_id and different labels"
            )
    return PairFile(
        str(path), sha256_file(path), tuple(row["Text"] for row in rows), tuple(row["Sentiment"] for row in rows)
    )


def to_labels(pairs: PairFile, labels: tuple[str, ...]) -> Split:
    """The pairs' texts labelled by the main data's `labels` (matched ignoring case); ids number the pairs."""
    index = {label.casefold(): number for number, label in enumerate(labels)}
    unknown = sorted({label for label in pairs.labels if label.casefold() not in index})
    if unknown:
        raise DataError(f"{pairs.path}: labels {unknown} are not the data's {list(labels)}")
    return Split(
        list(pairs.texts),
        np.array([index[label.casefold()] for label in pairs.labels], np.int32),
        np.arange(len(pairs.texts), dtype=np.int64) // 2,
    )
