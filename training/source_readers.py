"""The readers of labelled texts, one a format: CSV and TSV with a header row (`read_table`), JSON lines
(`read_json_lines`), a folder per label, or train/ and test/ folders of them (`read_folder`). Each gives
the texts as Examples, each checked on its own (a string, not empty, not over training.limits, its label
plain text, its split train or test); the checks across them are training.source_checks'.

CSV and TSV use the csv module's "excel" and "excel-tab" dialects (quoted fields may span lines, and
Excel's "sep=;" first line is honoured); every file is UTF-8, with or without a byte-order mark. Files
are streamed line by line while their sha256 is computed; a folder's checksum (`folder_digest`) covers
every file read, name and content. A DataError names the file and the line or file at fault.
"""

from __future__ import annotations

import codecs
import collections
import csv
import hashlib
import itertools
import json
import re
import sys
from pathlib import Path

from training import limits
from training.data import DataError
from training.source_checks import Example, clean_label

SPLIT_VALUES = ("train", "test")
# The longest CSV field read, in characters (the csv module's default is 131,072); a longer one
# is refused (training.limits).
CSV_FIELD_LIMIT = limits.MAX_TEXT_BYTES
# Excel's first line naming the delimiter of the rest, e.g. "sep=;".
_EXCEL_SEPARATOR = re.compile(r"sep=(.)\r?\n?")


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
    clean_label(label, f"{path} {origin}")  # composed once look-alikes are ruled out (assemble)
    if split is not None:
        value = split.strip().lower() if isinstance(split, str) else split
        if value not in SPLIT_VALUES:
            raise DataError(
                f"{path} {origin}: {names['split']!r} is {split!r}; expected train or test "
                "(or leave the split column out with --split-column '')"
            )
        split = value
    return Example(text, label, split, number, origin)


def read_table(path: Path, fmt: str, names: dict, digest) -> tuple[list[Example], bool]:
    """The rows of a CSV or TSV file with a header row; also whether it has the split column.
    names: the column read for each role (text, label, split; split None for none)."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
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


def read_json_lines(path: Path, names: dict, digest) -> tuple[list[Example], bool]:
    """One JSON object a line; blank lines are skipped. The first object says whether the data has
    a split key, and then every object must. names: the key read for each role, as read_table's."""
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


def folder_files(path: Path) -> list[tuple[str | None, str, Path]]:
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


def folder_digest(files, contents=None) -> str:
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


def read_folder(path: Path) -> tuple[list[Example], str]:
    files = folder_files(path)
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
    return examples, folder_digest(files, contents)
