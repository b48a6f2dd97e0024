"""Shared fixtures: the real dataset's location, small aclImdb archives built on the fly, and
the shipped bundle."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"
SHIPPED_BUNDLE = ROOT / "models" / "imdb-lstm"

# Folders whose every test trains a model, converts one, builds the wheel or runs a benchmark: slow
# (tens of seconds to minutes each). `pytest -m "not slow"` is the edit-test loop without them.
SLOW_PATHS = ("tests/training/", "tests/export/", "tests/benchmarks/", "tests/test_build.py")

POSITIVE_WORDS = "great wonderful brilliant moving superb loved beautiful best enjoyable masterpiece".split()
NEGATIVE_WORDS = "awful boring terrible dull worst hated waste poor stupid mess".split()
FILLER = "the film story actor plot scene director movie character music".split()


def synthetic_review(index: int, positive: bool) -> str:
    """A review whose sentiment words a model can learn from a few hundred examples."""
    words = POSITIVE_WORDS if positive else NEGATIVE_WORDS
    body = [
        FILLER[(index * 7 + k) % len(FILLER)] if k % 3 else words[(index + k) % len(words)]
        for k in range(12 + index % 40)
    ]
    return "<br />".join(" ".join(body[i : i + 6]).capitalize() + "." for i in range(0, len(body), 6))


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_archive(path: Path, per_folder: int, extra: dict[str, bytes] | None = None, splits=("train", "test")) -> Path:
    """A small aclImdb-layout .tar.gz with `per_folder` synthetic reviews in each label folder."""
    with tarfile.open(path, "w:gz") as archive:
        add_file(archive, "aclImdb/README", b"synthetic")
        for split in splits:
            for label in ("neg", "pos"):
                for index in range(per_folder):
                    text = synthetic_review(index + (split == "test") * 1000, label == "pos")
                    add_file(
                        archive, f"aclImdb/{split}/{label}/{index}_{7 if label == 'pos' else 2}.txt", text.encode()
                    )
        for name, data in (extra or {}).items():
            add_file(archive, name, data)
    return path


@pytest.fixture
def small_archive(tmp_path) -> Path:
    return write_archive(tmp_path / "aclImdb_small.tar.gz", per_folder=10)


def require_shared_archive() -> Path:
    if not SHARED_ARCHIVE.is_file():
        pytest.skip(f"the real dataset is not at {SHARED_ARCHIVE} (it sits beside the project on the build machines)")
    return SHARED_ARCHIVE


@pytest.fixture(scope="session")
def shared_test_set():
    """All 25,000 real test reviews and their labels."""
    from training import data

    return data.load_imdb(require_shared_archive()).test


@pytest.fixture(scope="session")
def shared_test_reviews(shared_test_set):
    """A few hundred real test reviews (seeded sample) and their labels."""
    from training import data

    return data.sample(shared_test_set, 400, seed=0)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(item.fspath).relative_to(ROOT).as_posix().startswith(SLOW_PATHS):
            item.add_marker(pytest.mark.slow)
