import tarfile

import numpy as np
import pytest

from tests.conftest import add_file, require_shared_archive, write_archive
from training import data, splits


def test_reads_a_small_archive(small_archive):
    dataset = data.load_imdb(small_archive)
    assert len(dataset.train) == len(dataset.test) == 20
    assert dataset.train.labels.tolist().count(1) == 10
    assert "<br />" in dataset.train.texts[0]
    assert len(dataset.sha256) == 64


def test_archive_and_extracted_folder_give_the_same_reviews(small_archive, tmp_path):
    with tarfile.open(small_archive) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    from_archive = data.load_imdb(small_archive)
    for folder in (tmp_path / "extracted", tmp_path / "extracted" / "aclImdb"):
        from_folder = data.load_imdb(folder)
        assert from_folder.train.texts == from_archive.train.texts
        np.testing.assert_array_equal(from_folder.test.labels, from_archive.test.labels)


def test_a_member_escaping_the_archive_is_refused(tmp_path):
    path = write_archive(tmp_path / "evil.tar.gz", 2, extra={"aclImdb/train/pos/../../../evil.txt": b"pwned"})
    with pytest.raises(data.DataError, match="points outside the archive"):
        data.load_imdb(path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_links_and_stray_members_are_ignored(tmp_path):
    path = tmp_path / "links.tar.gz"
    write_archive(path, 2)
    with tarfile.open(path, "r:gz") as source:
        members = [(m, source.extractfile(m).read() if m.isfile() else None) for m in source.getmembers()]
    with tarfile.open(path, "w:gz") as archive:
        for member, payload in members:
            archive.addfile(member, None if payload is None else __import__("io").BytesIO(payload))
        link = tarfile.TarInfo("aclImdb/train/pos/99_9.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
        add_file(archive, "elsewhere/train/pos/1_9.txt", b"not part of the dataset")
    dataset = data.load_imdb(path)
    assert len(dataset.train) == 4 and not any("root:" in text for text in dataset.train.texts)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="no such file or folder"):
        data.load_imdb(tmp_path / "nope.tar.gz")


def test_corrupt_archive_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 definitely not gzip data")
    with pytest.raises(data.DataError, match="not a readable tar archive"):
        data.load_imdb(path)


def test_truncated_archive_is_a_clear_error(small_archive):
    small_archive.write_bytes(small_archive.read_bytes()[:600])
    with pytest.raises(data.DataError, match="not a readable tar archive"):
        data.load_imdb(small_archive)


def test_archive_without_the_layout_is_a_clear_error(tmp_path):
    path = write_archive(tmp_path / "train_only.tar.gz", 3, splits=("train",))
    with pytest.raises(data.DataError, match="not the aclImdb layout.*aclImdb/test/neg"):
        data.load_imdb(path)


def test_validation_split_is_seeded_stratified_and_disjoint(small_archive):
    train = data.load_imdb(small_archive).train
    fit, validation = splits.imdb_validation(train, 0.2, seed=3)
    again_fit, again_validation = splits.imdb_validation(train, 0.2, seed=3)
    assert validation.texts == again_validation.texts and fit.texts == again_fit.texts
    assert len(validation) == 4 and validation.labels.sum() == 2
    assert not set(fit.texts) & set(validation.texts)


def test_validation_takes_whole_blocks_of_consecutive_ids(tmp_path):
    """Neighbouring ids are mostly one film's reviews, so a block never straddles the two sides."""
    train = data.load_imdb(write_archive(tmp_path / "films.tar.gz", per_folder=200)).train
    fit, validation = splits.imdb_validation(train, 0.2, seed=5)
    block_ids = 10  # 200 ids per folder leave room for twenty blocks of 10

    def blocks(split):
        return {(label, review_id // block_ids) for label, review_id in zip(split.labels, split.ids)}

    assert len(blocks(validation)) == 8 and not blocks(fit) & blocks(validation)
    assert len(validation) == 80 and validation.labels.sum() == 40
    assert len(fit) + len(validation) == len(train)


def test_download_offline_fails_with_a_clear_message(monkeypatch):
    keras = pytest.importorskip("keras", reason="needs the training extra")

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(data.DataError, match="could not download.*--data"):
        data.load_imdb(None)


def test_reads_the_real_archive():
    dataset = data.load_imdb(require_shared_archive())
    assert len(dataset.train) == len(dataset.test) == 25_000
    assert sorted(dataset.train.ids[dataset.train.labels == 1]) == list(range(12_500))
    fit, validation = splits.imdb_validation(dataset.train, 0.2, seed=1337)
    assert len(validation) == 5_000 and validation.labels.mean() == 0.5

    def block(split):
        return set(zip(split.labels, split.ids // splits.VALIDATION_BLOCK_IDS))

    assert not block(fit) & block(validation)
    assert dataset.test.labels.mean() == 0.5
    sample = data.sample(dataset.test, 300, seed=0)
    assert len(sample) == 300 and all(len(text) > 10 for text in sample.texts)
