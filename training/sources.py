"""Labelled texts for `python -m training.fit --data`: IMDB, a folder per label, CSV/TSV, JSON lines.

    --data aclImdb_v1.tar.gz     IMDB's archive or extracted aclImdb/ folder (training.data)
    --data texts/                texts/<label>/*.txt, or texts/train/<label>/*.txt and texts/test/<label>/*.txt
    --data texts.csv             a header row, then one text a row (--text-column, --label-column)
    --data texts.tsv             the same, separated by tabs
    --data texts.jsonl           one JSON object a line, with the same keys

The format follows from the name (`--format` overrides it). CSV and TSV use the csv module's
"excel" and "excel-tab" dialects (quoted fields may span lines); every file is UTF-8, with or
without a byte-order mark. Files are streamed line by line while their sha256 is computed; a
folder's checksum covers every file read, name and content.

Labels are the distinct label values, sorted (by number when every label is an integer, so star
ratings run 1, 2, ..., 10), unless `labels` fixes their order. A `split` column (or key) whose
values are `train` and `test`, or `train/` and `test/` folders, is the data's own test split;
without one, `training.splits` carves a seeded, stratified one.

Data that cannot be trained on is refused with a DataError naming the file, and the line or file
of the first text at fault: a missing column, an empty text or label, a row with too many or too
few fields, bytes that are not UTF-8, a label with fewer than two examples, a single label, a
text column holding only numbers, a folder without label sub-folders, no rows at all.

This module picks the format, checks the options and reads: each format's reader is in
training/source_readers.py, the checks across the texts and their labels in training/source_checks.py;
their public names can be imported from here too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

from runtime.bundle import sha256_file
from training import data
from training.data import DataError

# The readers of the formats and the checks on what they read (callers and tests import their names
# from here): training/source_readers.py and training/source_checks.py.
from training.source_checks import (  # noqa: F401
    Example,
    assemble,
    check_collisions,
    clean_label,
    is_integer,
    label_key,
    label_order,
)
from training.source_readers import (  # noqa: F401
    CSV_FIELD_LIMIT,
    SPLIT_VALUES,
    folder_digest,
    folder_files,
    read_folder,
    read_json_lines,
    read_table,
    read_text_file,
)

FORMATS = ("imdb", "folder", "csv", "tsv", "jsonl")
TABLE_FORMATS = ("csv", "tsv", "jsonl")  # the formats with named columns (JSON keys for jsonl)
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
DEFAULT_COLUMNS = {"text": "text", "label": "label", "split": "split"}


@dataclass(frozen=True)
class DataOptions:
    """How to read the data; None means the default (see DEFAULT_COLUMNS)."""

    format: str = "auto"
    text_column: str | None = None
    label_column: str | None = None
    split_column: str | None = None  # "" ignores the data's split column
    labels: tuple[str, ...] | None = None  # a fixed label order; else the sorted distinct values

    def column(self, role: str) -> str | None:
        """The column (or JSON key) read for `role`: text, label or split (None: no split column)."""
        given = getattr(self, f"{role}_column")
        return DEFAULT_COLUMNS[role] if given is None else given or None


def detect_format(source: str | Path | None, requested: str = "auto") -> str:
    """The data's format: `requested`, or what its path says (None is IMDB's download)."""
    if requested != "auto":
        if requested not in FORMATS:
            raise DataError(f"unknown format {requested!r}; choose from auto, {', '.join(FORMATS)}")
        return requested
    if source is None:
        return "imdb"
    path = Path(source)
    if path.is_dir():
        return "imdb" if path.name == "aclImdb" or (path / "aclImdb").is_dir() else "folder"
    name = path.name.lower()
    if name.endswith(_ARCHIVE_SUFFIXES):
        return "imdb"
    if path.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[path.suffix.lower()]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(
        f"{path}: cannot tell the format from the name; pass --format "
        f"({', '.join(FORMATS)}), or name it .csv, .tsv or .jsonl"
    )


def data_stem(source: str | Path | None) -> str:
    """A name for runs on this data: the file or folder name without its suffixes."""
    name = Path(source).name if source is not None else "imdb"
    for suffix in (*_ARCHIVE_SUFFIXES, *_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("._-") or "data"  # a URL-safe name (training.fit --name)


def check_options(fmt: str, options: DataOptions) -> None:
    """Refuse options that do not apply to the format, before anything is read."""
    columns = [
        f"--{role}-column" for role in ("text", "label", "split") if getattr(options, f"{role}_column") is not None
    ]
    if columns and fmt not in TABLE_FORMATS:
        raise DataError(f"{', '.join(columns)}: only for CSV, TSV and JSON lines, not the {fmt} format")
    if options.labels is not None and fmt == "imdb":
        raise DataError("--labels: IMDB's labels are fixed (negative, positive)")
    if options.labels is not None:
        if len(set(options.labels)) != len(options.labels) or not all(options.labels):
            raise DataError(f"--labels: expected distinct, non-empty names, got {','.join(options.labels)}")
    if fmt in TABLE_FORMATS:
        roles = {role: options.column(role) for role in ("text", "label", "split")}
        if roles["text"] == roles["label"] or roles["split"] in (roles["text"], roles["label"]):
            raise DataError(f"the text, label and split columns must differ, got {roles}")


def load(source: str | Path | None, options: DataOptions = DataOptions()) -> data.Dataset:
    """Read labelled texts from `source` (None: download IMDB); DataError if they are refused."""
    fmt = detect_format(source, options.format)
    check_options(fmt, options)
    if options.labels is not None:
        options = replace(options, labels=tuple(clean_label(label, "--labels") for label in options.labels))
        check_collisions({label: "--labels" for label in options.labels}, "--labels")
    if fmt == "imdb":
        return data.load_imdb(source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if fmt == "folder":
        if not path.is_dir():
            raise DataError(f"{path}: not a folder (the folder format is <folder>/<label>/*.txt)")
        examples, sha256 = read_folder(path)
        return assemble(examples, path, sha256, fmt, options.labels, None)
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    digest = hashlib.sha256()
    names = {role: options.column(role) for role in ("text", "label", "split")}
    if fmt == "jsonl":
        examples, split_used = read_json_lines(path, names, digest)
    else:
        examples, split_used = read_table(path, fmt, names, digest)
    columns = {
        "text": options.column("text"),
        "label": options.column("label"),
        "split": options.column("split") if split_used else None,
    }
    return assemble(examples, path, digest.hexdigest(), fmt, options.labels, columns)


def checksum(source: str | Path, fmt: str) -> str:
    """The sha256 that `load` records for this data, computed without parsing it."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if fmt == "folder":
        if not path.is_dir():
            raise DataError(f"{path}: a file, but the bundle was trained on a folder of texts")
        return folder_digest(folder_files(path))
    if path.is_dir():
        raise DataError(f"{path}: a folder, but the bundle was trained on a {fmt} file")
    return sha256_file(path)
