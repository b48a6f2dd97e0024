"""The checks on labelled texts once a reader (training.source_readers) has them as Examples, and the
Dataset they make (`assemble`): no rows, or texts that are all numbers; labels that differ only in case,
Unicode form or look-alike characters (`label_key`, after Unicode's UTS #39 skeletons); labels that are
not plain visible text (`clean_label`); more labels, or longer ones, than a bundle has room for; a
single label, or one with fewer than two examples; a test split of the data's own without test examples,
or with a label it never trains on.

Labels are the distinct label values, sorted (by number when every label is an integer: `label_order`),
unless --labels fixes their order. Every refusal is a DataError naming the file, and the line or file
of the first text at fault.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from confusable_homoglyphs import confusables

from training import data, limits
from training.data import DataError

_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?%?")
# Characters no label may hold: controls (tab, line breaks, \x85), format characters (zero-width
# spaces, bidi overrides) and the line and paragraph separators. Invisible or reordering, they
# make labels that look alike but differ.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


@dataclass
class Example:
    text: str
    label: str
    split: str | None  # "train", "test", or None when the data has no split of its own
    number: int  # the line the row starts on, or the file's position in the folder
    origin: str  # where it came from, for messages: "line 17" or "train/pos/12.txt"


def clean_label(label: str, where: str) -> str:
    """The label in Unicode's composed form (NFC), or a DataError naming `where` if it is not valid
    Unicode, too long, or holds a character that is invisible or breaks lines. (Data labels are
    checked for look-alikes before they are composed: see `assemble`.)"""
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: from JSON's "\\ud800", or a name in another encoding
        raise DataError(f"{where}: the label {label!r} is not valid UTF-8 text; save or rename it as UTF-8") from None
    label = unicodedata.normalize("NFC", label)
    for character in label:
        problem = _REFUSED_CATEGORIES.get(unicodedata.category(character))
        if problem:
            raise DataError(
                f"{where}: the label {label!r} holds {problem} (U+{ord(character):04X}); "
                "labels must be plain visible text"
            )
    if len(label) > limits.MAX_LABEL_CHARACTERS:
        raise DataError(
            f"{where}: the label {label[:40]!r}... has {len(label):,} characters; a label may have "
            f"at most {limits.MAX_LABEL_CHARACTERS} (is this the text column?)"
        )
    return label


def label_key(label: str) -> str:
    """What two labels a reader could not tell apart share: a skeleton in the manner of Unicode's
    UTS #39 (compatibility-folded by NFKC, so fullwidth letters and no-break spaces match; case
    folded; each character replaced by a fixed one of its homoglyphs, so Cyrillic "р" is Latin "p")."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", label).casefold())
    return "".join(_prototype(character) for character in folded)


@functools.cache
def _prototype(character: str) -> str:
    """One character for all of `character`'s look-alikes (Unicode's confusables.txt, as packaged
    by confusable_homoglyphs): the lowest of them, so each group of look-alikes has one."""
    found = confusables.is_confusable(character, greedy=True) or []
    return min([character, *(entry["c"] for item in found for entry in item["homoglyphs"] if len(entry["c"]) == 1)])


def is_integer(label: str) -> bool:
    return _INTEGER.fullmatch(label) is not None


def label_order(names) -> tuple[str, ...]:
    """Labels sorted: by value when every one is an integer (1, 2, ..., 10), else by code point."""
    names = set(names)
    if all(map(is_integer, names)):
        return tuple(sorted(names, key=lambda name: (int(name), name)))
    return tuple(sorted(names))


def check_collisions(origins: dict[str, str], path) -> None:
    """Refuse labels that differ only in case, Unicode form or look-alikes ("Pos", "pos", Cyrillic "рos");
    origins: label -> where."""
    seen = {}
    for label, where in origins.items():
        other = seen.setdefault(label_key(label), label)
        if other != label:
            # Labels that compose alike print alike; their code points show the difference.
            one, two = unicodedata.normalize("NFC", label), unicodedata.normalize("NFC", other)
            show = repr if one != two and one.casefold() == two.casefold() else ascii
            raise DataError(
                f"{where}: the label {show(label)} differs from {show(other)} ({origins[other]}) only in "
                "case or Unicode form (look-alike characters included); make them one label, or two clearly "
                "different ones"
            )


def assemble(
    examples: list[Example], path: Path, sha256: str, fmt: str, fixed: tuple[str, ...] | None, columns: dict | None
) -> data.Dataset:
    """The checked examples as a Dataset; `fixed` is the label order --labels gives (None: label_order's)."""
    _check_texts(examples, path, columns)
    first_seen, counts = _compose_labels(examples, path)
    _check_label_room(counts, path, columns)
    labels = _choose_labels(examples, first_seen, counts, path, fixed)
    index = {label: position for position, label in enumerate(labels)}

    def split_of(chosen: list[Example]) -> data.Split:
        return data.Split(
            [example.text for example in chosen],
            np.array([index[example.label] for example in chosen], np.int32),
            np.array([example.number for example in chosen], np.int64),
        )

    own_split = examples[0].split is not None
    if not own_split:
        return data.Dataset(split_of(examples), None, str(path), sha256, labels, fmt, columns)
    train, test = _own_split(examples, labels, first_seen, path, columns)
    return data.Dataset(split_of(train), split_of(test), str(path), sha256, labels, fmt, columns)


def _check_texts(examples: list[Example], path: Path, columns: dict | None) -> None:
    """Refuse no examples at all, and texts that are all numbers (the wrong column, likely)."""
    if not examples:
        raise DataError(f"{path}: no rows with a text and a label")
    if all(_NUMBER.fullmatch(example.text.strip()) for example in examples):
        first = examples[0]
        what = f"text in column {columns['text']!r} is" if columns else "text file holds only"
        raise DataError(
            f"{path}: every {what} a number (e.g. {first.text.strip()!r} at {first.origin}); "
            + ("choose the text column with --text-column" if columns else "is this text data?")
        )


def _compose_labels(examples: list[Example], path: Path) -> tuple[dict[str, Example], dict[str, int]]:
    """Refuse look-alike labels, then compose each example's label (NFC); return each label's first
    example and its count."""
    first_seen, counts = {}, {}
    for example in examples:
        first_seen.setdefault(example.label, example)
        counts[example.label] = counts.get(example.label, 0) + 1
    check_collisions({label: f"{path} {example.origin}" for label, example in first_seen.items()}, path)
    # No two labels compose alike, so composing them (NFC) keeps them apart.
    composed = {label: unicodedata.normalize("NFC", label) for label in counts}
    for example in examples:
        example.label = composed[example.label]
    first_seen = {composed[label]: example for label, example in first_seen.items()}
    counts = {composed[label]: count for label, count in counts.items()}
    return first_seen, counts


def _check_label_room(counts: dict[str, int], path: Path, columns: dict | None) -> None:
    """Refuse more labels, or longer ones, than a bundle has room for (training/limits.py)."""
    if len(counts) > limits.MAX_LABELS:
        raise DataError(
            f"{path}: {len(counts):,} distinct labels; a model may have at most {limits.MAX_LABELS:,} "
            + (f"(is {columns['label']!r} the label column?)" if columns else "")
        )
    if limits.labels_json_bytes(counts) > limits.MAX_LABELS_JSON_BYTES:
        raise DataError(
            f"{path}: the {len(counts):,} labels take {limits.labels_json_bytes(counts):,} bytes, over the "
            f"{limits.MAX_LABELS_JSON_BYTES:,} a bundle's manifest has room for; use shorter labels"
        )


def _choose_labels(
    examples: list[Example],
    first_seen: dict[str, Example],
    counts: dict[str, int],
    path: Path,
    fixed: tuple[str, ...] | None,
) -> tuple[str, ...]:
    """The labels in order (--labels', else label_order's); at least two, each with two examples."""
    if fixed is not None:
        unknown = [label for label in first_seen if label not in fixed]
        if unknown:
            example = first_seen[unknown[0]]
            raise DataError(
                f"{path} {example.origin}: the label {unknown[0]!r} is not one of --labels {','.join(fixed)}"
            )
        missing = [label for label in fixed if label not in counts]
        if missing:
            raise DataError(f"{path}: no example of the label {missing[0]!r} named by --labels")
        labels = tuple(fixed)
    else:
        labels = label_order(counts)
    if len(labels) < 2:
        raise DataError(
            f"{path}: only one label ({labels[0]!r}) in {len(examples):,} examples; a classifier needs at least two"
        )
    for label in labels:
        if counts[label] < 2:
            raise DataError(
                f"{path} {first_seen[label].origin}: the only example of the label {label!r}; "
                "every label needs at least 2 examples to be split into training and test"
            )
    return labels


def _own_split(
    examples: list[Example],
    labels: tuple[str, ...],
    first_seen: dict[str, Example],
    path: Path,
    columns: dict | None,
) -> tuple[list[Example], list[Example]]:
    """The data's own training and test examples; refuse no test examples, or a label never trained."""
    train = [example for example in examples if example.split == "train"]
    test = [example for example in examples if example.split == "test"]
    where = f"column {columns['split']!r}" if columns else "test/ folder"
    if not test:
        raise DataError(
            f"{path}: no test examples in the {where}"
            + (
                " (leave the split column out with --split-column '' to carve a test split)"
                if columns
                else " (leave the test/ folder out to carve a test split)"
            )
        )
    trained = {example.label for example in train}
    for label in labels:
        if label not in trained:
            raise DataError(
                f"{path} {first_seen[label].origin}: the label {label!r} has test examples but no training example"
            )
    return train, test
