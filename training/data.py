"""The Large Movie Review Dataset (Maas et al., 2011): labelled reviews as raw text.

Reads the official `aclImdb_v1.tar.gz`, a copy with the same layout (such as
`../shared/data/aclImdb_labeled.tar.gz`), or an extracted `aclImdb/` folder. Archives are
streamed member by member, never unpacked to disk; only regular files at
`aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` are read, links and devices are skipped, and
a member whose path escapes the archive's root refuses the whole archive.

The dataset numbers a folder's reviews movie by movie: reviews with neighbouring ids are mostly
about the same film, while the train and test sets share no film. The validation set is therefore
carved in blocks of consecutive ids, so that, like the test set, it is mostly about films that
training does not see.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from runtime.bundle import sha256_file
from training import limits
from training.limits import MAX_TEXT_BYTES

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
SPLITS = ("train", "test")
LABEL_FOLDERS = ("neg", "pos")  # label index 0 = negative, 1 = positive, as in ModelConfig.labels
_REVIEW_PATH = re.compile(r"aclImdb/(train|test)/(neg|pos)/(\d+)_\d+\.txt")


class DataError(Exception):
    """The data cannot be found or read, or is refused; the message names the file (and line)."""


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray  # int32 indices into the dataset's labels (IMDB: 0 = negative, 1 = positive)
    ids: np.ndarray  # int64; IMDB: the review's number in its folder (neighbours are mostly one film);
    # other data: the line or file number each text came from

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: np.ndarray) -> "Split":
        return Split([self.texts[i] for i in indices], self.labels[indices], self.ids[indices])


@dataclass
class Dataset:
    """Labelled texts as read from `source`; `test` is None when the data has no test split of its
    own (training.splits carves one). Labels index `labels`."""

    train: Split
    test: Split | None
    source: str
    sha256: str  # of the archive or data file, or of the files read from a folder
    labels: tuple[str, ...] = ("negative", "positive")  # IMDB's, as in ModelConfig.labels
    format: str = "imdb"  # one of training.sources.FORMATS
    columns: dict | None = None  # the columns (or JSON keys) read: text, label, split


def _check_member_name(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise DataError(f"refusing archive: member {name!r} points outside the archive")


def _collect(entries) -> dict:
    """Group (path, bytes) pairs by split; sorted by path so any source gives the same order."""
    grouped = {split: [] for split in SPLITS}
    for name, raw in entries:
        match = _REVIEW_PATH.fullmatch(name)
        if match:
            split, label, review_id = match.groups()
            grouped[split].append((name, LABEL_FOLDERS.index(label), raw.decode("utf-8", "replace"), int(review_id)))
    return grouped


def _read_archive(path: Path):
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for count, member in enumerate(archive, start=1):
                # TarFile keeps every header it reads; drop them, so memory does not grow with members.
                archive.members = []
                if count > limits.MAX_ARCHIVE_MEMBERS:
                    raise DataError(
                        f"{path}: over {limits.MAX_ARCHIVE_MEMBERS:,} members; a training archive may have at most that"
                    )
                _check_member_name(member.name)
                name = member.name.removeprefix("./")
                if member.isfile() and _REVIEW_PATH.fullmatch(name):
                    # The header's size is checked before a byte is inflated (a small archive can
                    # hold gigabytes of zeros), and the read is capped in any case.
                    if member.size > MAX_TEXT_BYTES:
                        raise DataError(
                            f"{path}: the member {name} is {member.size:,} bytes; a review may have "
                            f"at most {MAX_TEXT_BYTES:,}"
                        )
                    yield name, archive.extractfile(member).read(MAX_TEXT_BYTES)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(f"{path}: not a readable tar archive ({error})") from None


def review_files(path: Path):
    """(member name, bytes) of each labelled review file of an aclImdb archive or folder, streamed."""
    return _read_folder(path) if path.is_dir() else _read_archive(path)


def _read_folder(path: Path):
    root = path if path.name == "aclImdb" else path / "aclImdb"
    for split in SPLITS:
        for label in LABEL_FOLDERS:
            for file in sorted((root / split / label).glob("*.txt")):
                if file.is_file() and not file.is_symlink():
                    with open(file, "rb") as handle:
                        raw = handle.read(MAX_TEXT_BYTES + 1)
                    if len(raw) > MAX_TEXT_BYTES:
                        raise DataError(f"{file}: over {MAX_TEXT_BYTES:,} bytes; a review may have at most that")
                    yield f"aclImdb/{split}/{label}/{file.name}", raw


def download_official(cache_dir: str | None = None) -> Path:
    """Fetch the official archive with Keras and check its published sha256."""
    import keras

    try:
        return Path(
            keras.utils.get_file(
                fname="aclImdb_v1.tar.gz",
                origin=OFFICIAL_URL,
                file_hash=OFFICIAL_SHA256,
                hash_algorithm="sha256",
                cache_dir=cache_dir,
            )
        )
    except Exception as error:  # get_file raises plain Exception subclasses for network errors
        raise DataError(
            f"could not download {OFFICIAL_URL} ({error}); pass --data with a local copy, "
            "e.g. --data ../shared/data/aclImdb_labeled.tar.gz"
        ) from None


def load_imdb(source: str | Path | None = None) -> Dataset:
    """All 50,000 labelled reviews of the dataset from an archive or folder (None: download)."""
    path = Path(source) if source is not None else download_official()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        entries = list(_read_folder(path))
        digest = hashlib.sha256()
        for name, raw in entries:
            digest.update(name.encode() + b"\0" + hashlib.sha256(raw).digest())
        sha256 = digest.hexdigest()
    else:
        entries = list(_read_archive(path))
        sha256 = sha256_file(path)
    grouped = _collect(entries)
    missing = [
        f"aclImdb/{split}/{label}"
        for split in SPLITS
        for label in LABEL_FOLDERS
        if not any(entry[1] == LABEL_FOLDERS.index(label) for entry in grouped[split])
    ]
    if missing:
        raise DataError(f"{path}: not the aclImdb layout, no reviews in {', '.join(missing)}")
    splits = {}
    for split, rows in grouped.items():
        rows.sort()
        splits[split] = Split(
            [row[2] for row in rows],
            np.array([row[1] for row in rows], np.int32),
            np.array([row[3] for row in rows], np.int64),
        )
    return Dataset(splits["train"], splits["test"], str(path), sha256)


def sample(split: Split, count: int, seed: int) -> Split:
    """A seeded random subset of `count` reviews (all of them if count >= len(split))."""
    if count >= len(split):
        return split
    rng = np.random.default_rng(seed)
    return split.subset(np.sort(rng.choice(len(split), size=count, replace=False)))
