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
"""

from __future__ import annotations

import codecs
import collections
import csv
import functools
import hashlib
import itertools
import json
import re
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from confusable_homoglyphs import confusables

from runtime.bundle import sha256_file
from training import data, limits
from training.data import DataError

FORMATS = ("imdb", "folder", "csv", "tsv", "jsonl")
TABLE_FORMATS = ("csv", "tsv", "jsonl")  # the formats with named columns (JSON keys for jsonl)
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
DEFAULT_COLUMNS = {"text": "text", "label": "label", "split": "split"}
SPLIT_VALUES = ("train", "test")
# The longest CSV field read, in characters (the csv module's default is 131,072); a longer one
# is refused (training.limits).
CSV_FIELD_LIMIT = limits.MAX_TEXT_BYTES
# Excel's first line naming the delimiter of the rest, e.g. "sep=;".
_EXCEL_SEPARATOR = re.compile(r"sep=(.)\r?\n?")
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


@dataclass
class Example:
    text: str
    label: str
    split: str | None  # "train", "test", or None when the data has no split of its own
    number: int  # the line the row starts on, or the file's position in the folder
    origin: str  # where it came from, for messages: "line 17" or "train/pos/12.txt"


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


def clean_label(label: str, where: str) -> str:
    """The label in Unicode's composed form (NFC), or a DataError naming `where` if it is not valid
    Unicode, too long, or holds a character that is invisible or breaks lines. (Data labels are
    checked for look-alikes before they are composed: see `_assemble`.)"""
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
        _check_collisions({label: "--labels" for label in options.labels}, "--labels")
    if fmt == "imdb":
        return data.load_imdb(source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if fmt == "folder":
        if not path.is_dir():
            raise DataError(f"{path}: not a folder (the folder format is <folder>/<label>/*.txt)")
        examples, sha256 = _read_folder(path)
        return _assemble(examples, path, sha256, fmt, options, None)
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    digest = hashlib.sha256()
    if fmt == "jsonl":
        examples, split_used = _read_json_lines(path, options, digest)
    else:
        examples, split_used = _read_table(path, fmt, options, digest)
    columns = {
        "text": options.column("text"),
        "label": options.column("label"),
        "split": options.column("split") if split_used else None,
    }
    return _assemble(examples, path, digest.hexdigest(), fmt, options, columns)


def checksum(source: str | Path, fmt: str) -> str:
    """The sha256 that `load` records for this data, computed without parsing it."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if fmt == "folder":
        if not path.is_dir():
            raise DataError(f"{path}: a file, but the bundle was trained on a folder of texts")
        return _folder_digest(_folder_files(path))
    if path.is_dir():
        raise DataError(f"{path}: a folder, but the bundle was trained on a {fmt} file")
    return sha256_file(path)


# Reading -----------------------------------------------------------------------------------------


def _decoded_lines(handle, path: Path, digest):
    """Each line of a binary file as text (UTF-8, a leading byte-order mark dropped), hashed as read;
    a line over limits.MAX_LINE_BYTES is refused before it is all in memory."""
    for number, raw in enumerate(iter(lambda: handle.readline(limits.MAX_LINE_BYTES + 1), b""), start=1):
        if len(raw) > limits.MAX_LINE_BYTES:
            raise DataError(
                f"{path} line {number}: longer than {limits.MAX_LINE_BYTES:,} bytes; "
                f"a text may have at most {limits.MAX_TEXT_BYTES:,}"
            )
        digest.update(raw)
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{path} line {number}: not UTF-8 (byte 0x{raw[error.start]:02x} at byte "
                f"{error.start + 1} of the line); save the file as UTF-8"
            ) from None


def _missing_column(where: str, what: str, name: str, role: str, available) -> DataError:
    shown = ", ".join(repr(column) for column in list(available)[:20])
    return DataError(
        f"{where}: no {what} {name!r} (the {'header' if what == 'column' else 'line'} has "
        f"{shown or 'nothing'}); choose the {role} {what} with --{role}-column"
    )


def _example(path: Path, text, label, split, number: int, origin: str, names: dict) -> Example:
    """One checked example; `names` says which column or key each value came from."""
    if not isinstance(text, str):
        raise DataError(f"{path} {origin}: {names['text']!r} must be a string, not {type(text).__name__}")
    if not text.strip():
        raise DataError(f"{path} {origin}: empty text in {names['text']!r}")
    if len(text) * 4 > limits.MAX_TEXT_BYTES and len(text.encode("utf-8", "surrogatepass")) > limits.MAX_TEXT_BYTES:
        raise DataError(f"{path} {origin}: the text in {names['text']!r} is over {limits.MAX_TEXT_BYTES:,} bytes")
    if isinstance(label, int) and not isinstance(label, bool):
        label = str(label)
    if not isinstance(label, str):
        raise DataError(
            f"{path} {origin}: {names['label']!r} must be a string or an integer, not {type(label).__name__}"
        )
    label = label.strip()
    if not label:
        raise DataError(f"{path} {origin}: empty label in {names['label']!r}")
    clean_label(label, f"{path} {origin}")  # composed once look-alikes are ruled out (_assemble)
    if split is not None:
        value = split.strip().lower() if isinstance(split, str) else split
        if value not in SPLIT_VALUES:
            raise DataError(
                f"{path} {origin}: {names['split']!r} is {split!r}; expected train or test "
                "(or leave the split column out with --split-column '')"
            )
        split = value
    return Example(text, label, split, number, origin)


def _read_table(path: Path, fmt: str, options: DataOptions, digest) -> tuple[list[Example], bool]:
    """The rows of a CSV or TSV file with a header row; also whether it has the split column."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    names = {role: options.column(role) for role in ("text", "label", "split")}
    examples, header, positions = [], None, {}
    with open(path, "rb") as handle:
        lines = _decoded_lines(handle, path, digest)
        first = next(lines, "")
        separator = _EXCEL_SEPARATOR.fullmatch(first)
        skipped = 1 if separator else 0  # Excel's "sep=;" line is no row; line numbers still count it
        dialect = {"dialect": "excel-tab" if fmt == "tsv" else "excel"}
        if separator:
            dialect["delimiter"] = separator.group(1)
        reader = csv.reader(lines if separator else itertools.chain([first], lines), **dialect)
        end = skipped
        try:
            for row in reader:
                start, end = end + 1, reader.line_num + skipped
                if not row:  # a blank line
                    continue
                if header is None:
                    if len(row) > limits.MAX_COLUMNS:
                        raise DataError(
                            f"{path} line {start}: the header has {len(row):,} columns; "
                            f"a table may have at most {limits.MAX_COLUMNS:,}"
                        )
                    header = [name.strip() for name in row]
                    duplicates = sorted(name for name, count in collections.Counter(header).items() if count > 1)
                    if duplicates:
                        raise DataError(
                            f"{path} line {start}: the header names {', '.join(map(repr, duplicates))} twice"
                        )
                    for role in ("text", "label"):
                        if names[role] not in header:
                            raise _missing_column(f"{path} line {start}", "column", names[role], role, header)
                    positions = {role: header.index(name) for role, name in names.items() if name in header}
                    continue
                if len(row) != len(header):
                    fewer = "few" if len(row) < len(header) else "many"
                    raise DataError(
                        f"{path} line {start}: too {fewer} fields ({len(row)}; the header has {len(header)})"
                        + (" - a quote that is never closed?" if end > start else "")
                    )
                split = row[positions["split"]] if "split" in positions else None
                examples.append(
                    _example(
                        path, row[positions["text"]], row[positions["label"]], split, start, f"line {start}", names
                    )
                )
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                error = f"a field over {CSV_FIELD_LIMIT:,} characters; a text may have at most {limits.MAX_TEXT_BYTES:,} bytes"
            raise DataError(f"{path} line {reader.line_num + skipped}: {error}") from None
    if header is None:
        raise DataError(f"{path}: no rows (not even a header row)")
    return examples, "split" in positions


def _read_json_lines(path: Path, options: DataOptions, digest) -> tuple[list[Example], bool]:
    """One JSON object a line; blank lines are skipped. The first object says whether the data has
    a split key, and then every object must."""
    names = {role: options.column(role) for role in ("text", "label", "split")}
    examples, has_split = [], None
    with open(path, "rb") as handle:
        for number, line in enumerate(_decoded_lines(handle, path, digest), start=1):
            if not line.strip():
                continue
            origin = f"line {number}"
            try:
                value = json.loads(line)
            except ValueError as error:
                raise DataError(f"{path} {origin}: not JSON ({getattr(error, 'msg', error)})") from None
            except RecursionError:
                raise DataError(f"{path} {origin}: not JSON (nested too deeply)") from None
            if not isinstance(value, dict):
                raise DataError(
                    f"{path} {origin}: expected an object such as "
                    f'{{"{names["text"]}": "...", "{names["label"]}": "..."}}, not {type(value).__name__}'
                )
            for role in ("text", "label"):
                if names[role] not in value:
                    raise _missing_column(f"{path} {origin}", "key", names[role], role, value)
            line_has_split = names["split"] is not None and names["split"] in value
            if has_split is None:
                has_split = line_has_split
            elif line_has_split != has_split:
                raise DataError(
                    f"{path} {origin}: {'has' if line_has_split else 'lacks'} the {names['split']!r} key, "
                    "unlike the first line; give it on every line or on none"
                )
            examples.append(
                _example(
                    path,
                    value[names["text"]],
                    value[names["label"]],
                    value[names["split"]] if has_split else None,
                    number,
                    origin,
                    names,
                )
            )
    return examples, bool(has_split)


def _subfolders(folder: Path) -> list[Path]:
    """The sub-folders read; hidden ones (".name", "...") and links are skipped, and said so on stderr."""
    kept = []
    for child in sorted(folder.iterdir()):
        if not child.is_dir():
            continue
        why = (
            "a symbolic link"
            if child.is_symlink()
            else "hidden (its name starts with '.')"
            if child.name.startswith(".")
            else None
        )
        if why is None:
            kept.append(child)
            continue
        files = sum(1 for _ in child.rglob("*.txt")) if not child.is_symlink() else None
        print(
            f"note: skipped the folder {child}: {why}" + (f", with {files:,} .txt files" if files else ""),
            file=sys.stderr,
        )
    return kept


def _folder_files(path: Path) -> list[tuple[str | None, str, Path]]:
    """(split, label, file) for every .txt file: path/<label>/*.txt, or path/{train,test}/<label>/*.txt."""
    children = {child.name: child for child in _subfolders(path)}
    if "train" in children or "test" in children:
        if "train" not in children:
            raise DataError(f"{path}: a test/ folder but no train/ folder")
        roots = [(split, children[split]) for split in SPLIT_VALUES if split in children]
    else:
        roots = [(None, path)]
    files = []
    for split, root in roots:
        labels = _subfolders(root)
        if not labels:
            raise DataError(f"{root}: no label sub-folders; expected {root}/<label>/*.txt, one folder per label")
        for folder in labels:
            files.extend(
                (split, folder.name, file)
                for file in sorted(folder.glob("*.txt"))
                if file.is_file() and not file.is_symlink()
            )
    return files


def _folder_digest(files, contents=None) -> str:
    """The checksum of a folder's data: every file's path below the folder and content, in order."""
    digest = hashlib.sha256()
    for index, (split, label, file) in enumerate(files):
        raw = contents[index] if contents is not None else file.read_bytes()
        name = "/".join(part for part in (split, label, file.name) if part)
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0" + hashlib.sha256(raw).digest())
    return digest.hexdigest()


def read_text_file(file: Path) -> bytes:
    """A text file's bytes; one over limits.MAX_TEXT_BYTES is refused before it is read."""
    with open(file, "rb") as handle:
        raw = handle.read(limits.MAX_TEXT_BYTES + 1)
    if len(raw) > limits.MAX_TEXT_BYTES:
        raise DataError(f"{file}: over {limits.MAX_TEXT_BYTES:,} bytes; a text may have at most that")
    return raw


def _read_folder(path: Path) -> tuple[list[Example], str]:
    files = _folder_files(path)
    examples, contents = [], []
    names = {"text": "the file", "label": "the folder name", "split": "the folder"}
    for number, (split, label, file) in enumerate(files, start=1):
        raw = read_text_file(file)
        contents.append(raw)
        origin = "/".join(part for part in (split, label, file.name) if part)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{file}: not UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1}); save the file as UTF-8"
            ) from None
        if not text.strip():
            raise DataError(f"{file}: empty text")
        examples.append(_example(path, text, label, split, number, origin, names))
    if not examples:
        raise DataError(f"{path}: no .txt files in its label sub-folders")
    return examples, _folder_digest(files, contents)


# Checking and assembling ---------------------------------------------------------------------------


def is_integer(label: str) -> bool:
    return _INTEGER.fullmatch(label) is not None


def label_order(names) -> tuple[str, ...]:
    """Labels sorted: by value when every one is an integer (1, 2, ..., 10), else by code point."""
    names = set(names)
    if all(map(is_integer, names)):
        return tuple(sorted(names, key=lambda name: (int(name), name)))
    return tuple(sorted(names))


def _check_collisions(origins: dict[str, str], path) -> None:
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


def _assemble(
    examples: list[Example], path: Path, sha256: str, fmt: str, options: DataOptions, columns: dict | None
) -> data.Dataset:
    _check_texts(examples, path, columns)
    first_seen, counts = _compose_labels(examples, path)
    _check_label_room(counts, path, columns)
    labels = _choose_labels(examples, first_seen, counts, path, options)
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
    _check_collisions({label: f"{path} {example.origin}" for label, example in first_seen.items()}, path)
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
    options: DataOptions,
) -> tuple[str, ...]:
    """The labels in order (--labels', else label_order's); at least two, each with two examples."""
    if options.labels is not None:
        unknown = [label for label in first_seen if label not in options.labels]
        if unknown:
            example = first_seen[unknown[0]]
            raise DataError(
                f"{path} {example.origin}: the label {unknown[0]!r} is not one of --labels {','.join(options.labels)}"
            )
        missing = [label for label in options.labels if label not in counts]
        if missing:
            raise DataError(f"{path}: no example of the label {missing[0]!r} named by --labels")
        labels = tuple(options.labels)
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
