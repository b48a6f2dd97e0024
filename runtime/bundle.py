"""The model bundle: a folder with everything a device needs, described by manifest.json.

    models/imdb-lstm/
        manifest.json     schema version, model config, tokenizer, artifacts with sha256, parity, metrics
        vocab.txt         the tokenizer's vocabulary, one word a line
        model.keras       the trained Keras model (training and export only)
        model*.tflite     device artifacts written by `python -m export.tflite`
        model*.onnx       device artifacts written by `python -m export.onnx`
                          (model.steps.*: the per-step graphs that `explain` runs)
        padding_states.npy  the LSTM state after each number of padding steps (cached and steps graphs)
        history.json, accuracy.png, loss.png   the training run's curves ("reports")
        metrics.json, confusion.png            per-label test figures and the confusion matrix ("reports")

`Manifest.read(folder)` is the one reader of a manifest: it checks its structure and types once
(`check_manifest`: every violation is a BundleError naming the file and key; `check_values`: no
value JSON allows but a manifest must not, such as NaN or nesting past MAX_MANIFEST_DEPTH) and
returns frozen,
typed records (Manifest, TokenizerRecord, ArtifactRecord with its ArtifactKind, FileRecord,
PaddingStatesRecord, ParityRecord, PackagedRecord) that the rest of the code reads by attribute;
`write_manifest` (of `Manifest.to_dict()`) is the one writer. `read_manifest` gives the same
checked manifest as a plain dict, for code that edits it as JSON (the exporters, tests).
`Bundle.open(folder)` opens a bundle once: its Manifest, and its files handed out verified. A file
record names a plain file inside the bundle folder; `read_file` reads it once, checks its size and
sha256, and returns those bytes, which are what gets loaded.

Writers put every file under a temporary name and move it into place, and a whole bundle is
built in a staging folder and swapped in, so a failed run leaves the previous bundle as it was.
Only a bundle is ever replaced (`check_replaceable`, which `staging_folder` applies).

The code is in three modules under this one, which keeps every public name (import them from
here): runtime/bundle_checks.py (the format's constants, BundleError, reading a file safely, the
checks of the manifest's values and structure), runtime/manifest_records.py (the typed records
and `check_manifest`) and runtime/bundle_write.py (writing files, manifests and whole bundles).
This module itself reads: `read_manifest`, `read_file`, `verify_file` and `Bundle`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# The public names of the three modules the bundle's code is split into: callers import them from here.
from runtime.bundle_checks import (  # noqa: F401
    ARTIFACT_GRAPHS,
    BACKENDS,
    GRAPHS,
    MANIFEST_NAME,
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    PADDING_STATES_NAME,
    PRECISIONS,
    SCHEMA_VERSION,
    STEPS_GRAPH,
    TOKENIZER_MODULE,
    TOKENIZER_SETTINGS,
    VOCABULARY_NAME,
    BundleError,
    artifact_filename,
    artifact_key,
    check_file_record,
    check_values,
    file_record,
    load_manifest_json,
    read_regular,
    sha256_file,
)
from runtime.bundle_write import (  # noqa: F401
    atomic_path,
    check_replaceable,
    copy_bundle,
    is_bundle,
    remove_stale_staging,
    staging_folder,
    write_json,
    write_manifest,
)
from runtime.manifest_records import (  # noqa: F401
    ArtifactKind,
    ArtifactRecord,
    DataRecord,
    EvaluationRecord,
    ExtraDataRecord,
    FileRecord,
    Manifest,
    MetricsRecord,
    PackagedRecord,
    PaddingStatesRecord,
    ParityRecord,
    PretrainingRecord,
    RefitRecord,
    ScoreRecord,
    SupervisionRecord,
    TokenizerRecord,
    TrainingRecord,
    check_manifest,
    to_plain,
)

# Where training and export write the shipped model in a clone, and where a built wheel carries
# its device part (setup.py); the default model is the wheel's when installed, else the clone's.
REPOSITORY_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "imdb-lstm"
PACKAGED_BUNDLE = Path(__file__).resolve().parent / "models" / "imdb-lstm"
DEFAULT_BUNDLE = PACKAGED_BUNDLE if (PACKAGED_BUNDLE / MANIFEST_NAME).is_file() else REPOSITORY_BUNDLE


# Reading ---------------------------------------------------------------------------------------


def read_manifest(folder: str | Path) -> dict:
    """The bundle's manifest as a plain dict, checked for structure and types (`check_manifest`):
    for tests that tamper with one. Everything else reads the typed `Manifest.read(folder)` (or
    `Bundle.open(folder).manifest`)."""
    manifest, path = load_manifest_json(folder)
    check_manifest(manifest, path)
    return manifest


def read_file(folder: str | Path, record: "FileRecord | dict") -> bytes:
    """The bytes of one file of the bundle, read once and checked against its manifest record.

    The record's name is a plain name (checked by `read_manifest`); a symbolic link is followed
    only if it stays inside the bundle folder, and only a regular file is read (never a FIFO or
    a device, which could block or never end).
    """
    folder = Path(folder)
    if not isinstance(record, FileRecord):
        record = FileRecord.from_dict(record)
    path = folder / record.file
    real = path.resolve()
    if real.parent != folder.resolve():
        raise BundleError(f"{path}: a link that leads outside the bundle folder")
    content = read_regular(real, record.bytes)
    if len(content) != record.bytes or hashlib.sha256(content).hexdigest() != record.sha256:
        raise BundleError(f"{path}: does not match the manifest (truncated, corrupt or replaced)")
    return content


def verify_file(folder: str | Path, record: "FileRecord | dict") -> Path:
    """Check one file of the bundle against its record; return its path (for loaders that need one)."""
    read_file(folder, record)
    return Path(folder) / (record.file if isinstance(record, FileRecord) else record["file"])


class Bundle:
    """A bundle folder opened once: its manifest read and checked (`read_manifest`), and its files
    handed out verified against their records. Everything that loads from a bundle takes one of
    these, so the folder is named once, where it is opened.

        opened = Bundle.open("models/imdb-lstm")
        vocabulary = opened.read(opened.manifest.tokenizer.vocabulary)   # checked bytes
    """

    def __init__(self, folder: str | Path, manifest: Manifest):
        self.folder = Path(folder)
        self.manifest = manifest
        self.config = manifest.model_config

    @classmethod
    def open(cls, folder: str | Path) -> "Bundle":
        return cls(folder, Manifest.read(folder))

    def __repr__(self) -> str:
        return f"Bundle({str(self.folder)!r})"

    def path(self, record: FileRecord) -> Path:
        """Where a record's file is (not yet checked: `read` or `verify` checks it)."""
        return self.folder / record.file

    def read(self, record: FileRecord) -> bytes:
        """The bytes of one file of the bundle, read once and checked against its record (`read_file`)."""
        return read_file(self.folder, record)

    def verify(self, record: FileRecord) -> Path:
        """Check one file against its record; return its path (for loaders that need one)."""
        return verify_file(self.folder, record)
