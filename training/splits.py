"""The held-out splits of a dataset, the manifest's record of them, and their re-creation.

Test: the data's own test split where it has one (IMDB's aclImdb/test, a split column, train/
and test/ folders); otherwise a seeded, stratified share of every label (`--test-split`).
Validation: carved from what is left, IMDB's in blocks of consecutive ids (training.data), any
other data's seeded and stratified. The manifest records the data's checksum, format, columns,
labels, the split sizes and the seed, so `recreate_test` gives `export.parity` exactly the
held-out texts of the data a bundle was trained on, and refuses other data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from runtime import bundle
from training import data, sources
from training.data import DataError
from training.settings import TrainingSettings

DEFAULT_TEST_SPLIT = 0.2
# IMDB's validation blocks span this many consecutive review ids; a film has at most 30 reviews.
VALIDATION_BLOCK_IDS = 100


def stratified(split: data.Split, fraction: float, seed: int) -> tuple[data.Split, data.Split]:
    """(rest, held): a seeded `fraction` of each label's examples is held, at least one of a label
    with two or more and never its last; both keep the data's order."""
    check_fraction(fraction)
    rng = np.random.default_rng(seed)
    held = []
    for members in label_members(split):
        count = min(len(members) - 1, max(1, round(len(members) * fraction)))
        held.extend(rng.permutation(members)[:count])
    held = np.sort(np.array(held, np.int64))
    return split.subset(np.setdiff1d(np.arange(len(split)), held)), split.subset(held)


def imdb_validation(split: data.Split, fraction: float, seed: int) -> tuple[data.Split, data.Split]:
    """(fit, validation): a seeded, label-stratified validation set carved out of IMDB's training reviews.

    Each label's reviews are cut into blocks of consecutive ids (VALIDATION_BLOCK_IDS, smaller
    when a folder has too few ids for twenty blocks) and whole blocks, drawn at random, go to
    validation until it holds `fraction` of them, so a film's reviews mostly stay on one side.
    """
    check_fraction(fraction)
    rng = np.random.default_rng(seed)
    validation = []
    for members in label_members(split):
        ids = split.ids[members]
        block_ids = max(1, min(VALIDATION_BLOCK_IDS, (ids.max() - ids.min() + 1) // 20))
        blocks = ids // block_ids
        wanted = max(1, round(len(members) * fraction))
        taken = 0
        for block in rng.permutation(np.unique(blocks)):
            if taken >= wanted:
                break
            chosen = members[blocks == block]
            validation.extend(chosen)
            taken += len(chosen)
    validation = np.sort(np.array(validation))
    training = np.setdiff1d(np.arange(len(split)), validation)
    return split.subset(rng.permutation(training)), split.subset(validation)


def check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"a split fraction must be between 0 and 1, got {fraction}")


def label_members(split: data.Split) -> list[np.ndarray]:
    """Each label's example positions in `split`, by label index."""
    return [np.flatnonzero(split.labels == label) for label in np.unique(split.labels)]


def held_out(dataset: data.Dataset, test_split: float, seed: int) -> tuple[data.Split, data.Split]:
    """(train, test): the data's own test split, else a seeded stratified one."""
    if dataset.test is not None:
        return dataset.train, dataset.test
    return stratified(dataset.train, test_split, seed)


def validation(dataset: data.Dataset, train: data.Split, fraction: float, seed: int) -> tuple[data.Split, data.Split]:
    """(fit, validation) from the training examples; fit in a seeded random order."""
    if dataset.format == "imdb":
        fit, held = imdb_validation(train, fraction, seed)
    else:
        rest, held = stratified(train, fraction, seed)
        fit = rest.subset(np.random.default_rng(seed).permutation(len(rest)))
    if not len(fit) or not len(held):
        raise DataError(
            f"{dataset.source}: {len(train)} training examples are too few to carve a validation "
            f"split from; every label needs 2 or more of them"
        )
    return fit, held


def label_counts(labels: tuple[str, ...], split: data.Split) -> dict:
    counts = np.bincount(split.labels, minlength=len(labels))
    return {label: int(count) for label, count in zip(labels, counts)}


def data_record(
    dataset: data.Dataset, fit: data.Split, held: data.Split, test: data.Split | None, test_split: float, seed: int
) -> bundle.DataRecord:
    """The manifest's `training.data`: what was read and how it was split (`test` None: a tuning
    trial's, which never reads its test split)."""
    return bundle.DataRecord(
        source=Path(dataset.source).name,
        sha256=dataset.sha256,
        fit_reviews=len(fit),
        validation_reviews=len(held),
        validation_block_ids=VALIDATION_BLOCK_IDS if dataset.format == "imdb" else None,
        test_reviews=None if test is None else len(test),
        format=dataset.format,
        columns=dataset.columns,
        labels=tuple(dataset.labels),
        test_split=None if dataset.test is not None else test_split,  # None: the data's own
        split_seed=seed,
        label_counts={
            name: label_counts(dataset.labels, split)
            for name, split in (("fit", fit), ("validation", held), ("test", test))
            if split is not None
        },
    )


def recreate_test(data_source: str | Path | None, manifest: bundle.Manifest | None) -> data.Split:
    """The test texts a bundle was evaluated on, re-created from the data it was trained on
    (None: a bundle without a training record, taken as IMDB's).

    IMDB's test split is its aclImdb/test folder, the same in the official archive, a copy and an
    extracted folder (whose checksums differ), so another checksum is only noted. Any other data
    must have the checksum the manifest records; its labels are read in the bundle's order and
    the test split is carved again with the recorded fraction and seed.
    """
    training = manifest.training if manifest is not None else None
    record = (training.data if training else None) or bundle.DataRecord()
    if record.format == "imdb":
        dataset = data.load_imdb(data_source)
        if record.sha256 not in (None, dataset.sha256):
            print(
                f"note: {dataset.source} has sha256 {dataset.sha256}, the bundle's IMDB data "
                f"{record.source} had {record.sha256}; both have the aclImdb/test layout, "
                "so its test reviews are used",
                file=sys.stderr,
            )
        return dataset.test
    trained_on = f"{record.source} (sha256 {record.sha256})"
    if data_source is None:
        raise DataError(f"this bundle was trained on {trained_on}, {record.format} data; pass --data with it")
    sha256 = sources.checksum(data_source, record.format)
    if sha256 != record.sha256:
        raise DataError(
            f"{data_source} has sha256 {sha256}, but this bundle was trained on {trained_on}; "
            "pass --data with the data it was trained on"
        )
    options = sources.DataOptions(
        format=record.format,
        text_column=record.column("text"),
        label_column=record.column("label"),
        split_column=record.column("split") or ("" if record.format in sources.TABLE_FORMATS else None),
        labels=manifest.model_config.labels,
    )
    dataset = sources.load(data_source, options)
    settings = TrainingSettings.from_record(training.settings)
    _, test = held_out(dataset, record.test_split, settings.seed if record.split_seed is None else record.split_seed)
    limit = settings.limit  # a --limit run sampled its test texts
    expected = record.test_reviews
    if expected is not None and expected != (min(limit, len(test)) if limit else len(test)):
        raise DataError(f"{data_source}: re-created {len(test):,} test texts; the manifest records {expected:,}")
    return test
