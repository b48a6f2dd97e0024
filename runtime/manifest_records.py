"""The typed manifest (runtime/bundle.py is the module to import): frozen records of a checked
manifest, which the rest of the code reads by attribute, and `check_manifest`, every check of
runtime/bundle_checks.py together with the types of the plain records' fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from runtime.bundle_checks import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    TOKENIZER_MODULE,
    TOKENIZER_SETTINGS,
    artifact_filename,
    artifact_key,
    check_plain,
    check_structure,
    file_record,
    load_manifest_json,
    require,
)
from runtime.config import ModelConfig

# The typed manifest --------------------------------------------------------------------------------
#
# `check_manifest` says what a manifest must hold; `Manifest.parse` checks it once and turns it into
# the frozen records below, which the rest of the code reads by attribute. Keys a record does not
# model (the exporters' `form`, `opset`, ...; parity's figures; `training` and `metrics`) are kept as
# read-only mappings, and each record remembers its keys' order, so `to_dict()` writes back what
# was read. The format is unchanged: SCHEMA_VERSION stays 1.


def _frozen(value):
    """A JSON value made read-only: objects as mappingproxy, arrays as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


def to_plain(value):
    """A value of the typed manifest as plain JSON data (dicts and lists): for json.dumps."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    return value


_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class _Record:
    """A manifest object: typed fields, the keys it does not model (`extra`) and its keys' order."""

    extra: Mapping = field(default_factory=lambda: _EMPTY)
    order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def _known(self) -> dict:
        raise NotImplementedError

    def to_dict(self) -> dict:
        merged = {**{key: to_plain(value) for key, value in self._known().items()}, **to_plain(self.extra)}
        ordered = {key: merged[key] for key in self.order if key in merged}
        return {**ordered, **{key: value for key, value in merged.items() if key not in ordered}}

    @staticmethod
    def _split(data: Mapping, known: tuple[str, ...]) -> dict:
        return {"extra": _frozen({key: value for key, value in data.items() if key not in known}), "order": tuple(data)}


@dataclass(frozen=True, kw_only=True)
class FileRecord(_Record):
    """A file of the bundle: a plain name inside the folder, its size and its sha256."""

    file: str
    bytes: int
    sha256: str
    _KEYS = ("file", "bytes", "sha256")

    def _known(self) -> dict:
        return {"file": self.file, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping) -> "FileRecord":
        return cls(file=data["file"], bytes=data["bytes"], sha256=data["sha256"], **cls._split(data, cls._KEYS))

    @classmethod
    def of(cls, path: Path, **fields) -> "FileRecord":
        """How the manifest describes a file written into the bundle (`file_record`), with the
        record's other fields (an ArtifactRecord's format, ...)."""
        return cls.from_dict({**file_record(Path(path)), **fields})


@dataclass(frozen=True, kw_only=True)
class PaddingStatesRecord(FileRecord):
    steps: int  # the array holds the state after 0..steps padding steps
    _KEYS = (*FileRecord._KEYS, "steps")

    def _known(self) -> dict:
        return {**super()._known(), "steps": self.steps}

    @classmethod
    def from_dict(cls, data: Mapping) -> "PaddingStatesRecord":
        return cls(
            file=data["file"],
            bytes=data["bytes"],
            sha256=data["sha256"],
            steps=data["steps"],
            **cls._split(data, cls._KEYS),
        )


@dataclass(frozen=True)
class ArtifactKind:
    """Which device artifact: backend (tflite, onnx), graph (full, cached, steps) and precision."""

    backend: str
    graph: str
    precision: str

    @property
    def key(self) -> str:
        return artifact_key(self.backend, self.graph, self.precision)

    @property
    def filename(self) -> str:
        return artifact_filename(self.backend, self.graph, self.precision)


@dataclass(frozen=True, kw_only=True)
class ArtifactRecord(FileRecord):
    """One model file: `format` keras, or a device artifact with its kind and interface."""

    format: str
    graph: str | None = None
    precision: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    vocabulary_sha256: str | None = None
    sequence_length: int | None = None  # None: a graph that takes any length
    _KEYS = (
        *FileRecord._KEYS,
        "format",
        "graph",
        "precision",
        "inputs",
        "outputs",
        "labels",
        "vocabulary_sha256",
        "sequence_length",
    )

    @property
    def kind(self) -> ArtifactKind | None:
        """None for the Keras model, which no device runs."""
        return None if self.format == "keras" else ArtifactKind(self.format, self.graph, self.precision)

    @property
    def details(self) -> Mapping:
        """The exporter's own keys, which loading does not read (form, quantization, batch_size, opset)."""
        return self.extra

    def _known(self) -> dict:
        known = {**super()._known(), "format": self.format}
        if self.format == "keras":
            return {**known, **({"precision": self.precision} if self.precision is not None else {})}
        return {
            **known,
            "graph": self.graph,
            "precision": self.precision,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "labels": list(self.labels),
            "vocabulary_sha256": self.vocabulary_sha256,
            "sequence_length": self.sequence_length,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "ArtifactRecord":
        fields = {key: data[key] for key in cls._KEYS if key in data}
        for key in ("inputs", "outputs", "labels"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields, **cls._split(data, cls._KEYS))


@dataclass(frozen=True, kw_only=True)
class TokenizerRecord(_Record):
    """How texts become ids: runtime.text's settings (checked equal to TOKENIZER_SETTINGS) and the vocabulary."""

    vocabulary: FileRecord
    words: int  # how many words the vocabulary has
    module: str | None = TOKENIZER_MODULE
    settings: Mapping = field(
        default_factory=lambda: MappingProxyType(dict(TOKENIZER_SETTINGS))
    )  # pad_id, start_id, ..., padding, truncating
    _KEYS = ("module", "vocabulary", "words", *TOKENIZER_SETTINGS)

    def _known(self) -> dict:
        return {
            **({"module": self.module} if self.module is not None else {}),
            "vocabulary": self.vocabulary,
            "words": self.words,
            **self.settings,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "TokenizerRecord":
        return cls(
            vocabulary=FileRecord.from_dict(data["vocabulary"]),
            words=data["words"],
            module=data.get("module"),
            settings=_frozen({key: data[key] for key in TOKENIZER_SETTINGS}),
            **cls._split(data, cls._KEYS),
        )


@dataclass(frozen=True, kw_only=True)
class ParityRecord(_Record):
    """What `python -m export.parity` proved of one artifact: passed, for which sha256, and its figures."""

    passed: bool
    sha256: str | None = None
    _KEYS = ("passed", "sha256")

    @property
    def figures(self) -> Mapping:
        return self.extra

    def proves(self, record: FileRecord) -> bool:
        """A passing result for exactly this file's bytes."""
        return self.passed is True and self.sha256 == record.sha256

    def _known(self) -> dict:
        return {"passed": self.passed, **({"sha256": self.sha256} if self.sha256 is not None else {})}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ParityRecord":
        return cls(passed=data["passed"], sha256=data.get("sha256"), **cls._split(data, cls._KEYS))


@dataclass(frozen=True, kw_only=True)
class PackagedRecord(_Record):
    """Only in a wheel's copy (setup.py): the artifacts left out, and where they are."""

    omitted_artifacts: tuple[str, ...] = ()
    note: str | None = None
    _KEYS = ("omitted_artifacts", "note")

    def _known(self) -> dict:
        return {"omitted_artifacts": list(self.omitted_artifacts), **({"note": self.note} if self.note else {})}

    @classmethod
    def from_dict(cls, data) -> "PackagedRecord | None":
        if not isinstance(data, Mapping):  # not checked by check_manifest: read what there is
            return None
        omitted = data.get("omitted_artifacts")
        return cls(
            omitted_artifacts=tuple(omitted) if isinstance(omitted, list) else (),
            note=data.get("note") if isinstance(data.get("note"), str) else None,
            **cls._split(data, cls._KEYS),
        )


@dataclass(frozen=True, kw_only=True)
class _PlainRecord(_Record):
    """A record of plain, optional fields (`training` and `metrics` and their parts), which the
    runtime never interprets: each field is checked for its type only (`_check_plain`); written back with the keys it was read with (a new one
    writes every field but those of OMIT_WHEN_NONE that are None). NESTED names the fields that are
    records of their own."""

    NESTED = {}
    OMIT_WHEN_NONE = ()

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(item.name for item in dataclasses.fields(cls) if item.name not in ("extra", "order"))

    def _known(self) -> dict:
        return {
            name: getattr(self, name)
            for name in self._names()
            if name in self.order
            or (not self.order and not (name in self.OMIT_WHEN_NONE and getattr(self, name) is None))
        }

    @classmethod
    def from_dict(cls, data):
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            return None
        values = {name: _frozen(data[name]) for name in cls._names() if name in data}
        for name, record in cls.NESTED.items():
            values[name] = record.from_dict(values.get(name))
        return cls(**values, **cls._split(data, cls._names()))


@dataclass(frozen=True, kw_only=True)
class DataRecord(_PlainRecord):
    """training.data: what training read and how it split it (export re-creates the test texts from it)."""

    source: str | None = None
    sha256: str | None = None
    fit_reviews: int | None = None
    validation_reviews: int | None = None
    validation_block_ids: int | None = None  # IMDB's: validation takes whole blocks of consecutive ids
    test_reviews: int | None = None
    format: str = "imdb"  # bundles from before other data was supported are IMDB's
    columns: Mapping | None = None  # the data's column (or JSON key) of each role: text, label, split
    labels: tuple[str, ...] | None = None
    test_split: float | None = None  # None: the data's own test split
    split_seed: int | None = None
    label_counts: Mapping | None = None
    OMIT_WHEN_NONE = ("validation_block_ids",)

    def column(self, role: str) -> str | None:
        return self.columns.get(role) if isinstance(self.columns, Mapping) else None  # columns may be null


@dataclass(frozen=True, kw_only=True)
class ExtraDataRecord(_PlainRecord):
    """One file of extra supervision that training read (training/supervision.py)."""

    source: str | None = None  # the file's name
    sha256: str | None = None
    texts: int | None = None
    dropped: int | None = None  # texts left out because the main data holds them out
    citation: str | None = None


@dataclass(frozen=True, kw_only=True)
class SupervisionRecord(_PlainRecord):
    """training.supervision: the extra sources mixed into training, and those validated each epoch."""

    phrases: ExtraDataRecord | None = None
    pairs: ExtraDataRecord | None = None
    phrases_validation: ExtraDataRecord | None = None
    pairs_validation: ExtraDataRecord | None = None
    NESTED = {name: ExtraDataRecord for name in ("phrases", "pairs", "phrases_validation", "pairs_validation")}


@dataclass(frozen=True, kw_only=True)
class TrainingRecord(_PlainRecord):
    """training: how the model was trained. `settings` is training.fit's TrainingSettings as a
    mapping (training.settings reads it back); the runtime never reads any of it."""

    settings: Mapping = field(default_factory=lambda: _EMPTY)
    data: DataRecord | None = None
    supervision: SupervisionRecord | None = None
    library_versions: Mapping = field(default_factory=lambda: _EMPTY)
    machine: str | None = None
    NESTED = {"data": DataRecord, "supervision": SupervisionRecord}
    OMIT_WHEN_NONE = ("supervision",)


@dataclass(frozen=True, kw_only=True)
class RefitRecord(_PlainRecord):
    """metrics.refit: the fresh model trained on every training review for the validated epochs."""

    reviews: int | None = None
    epochs: int | None = None
    accuracy: float | None = None
    loss: float | None = None


@dataclass(frozen=True, kw_only=True)
class PretrainingRecord(_PlainRecord):
    """metrics.pretraining: how the embedding was started (word2vec or a language model), and the teacher."""

    method: str | None = None
    seconds: float | None = None
    teacher: Mapping | None = None  # the n-gram teacher's record (training/teacher.py)


@dataclass(frozen=True, kw_only=True)
class ScoreRecord(_PlainRecord):
    """One benchmark scored through the runtime: its texts, how many were right, and its file."""

    texts: int | None = None
    accuracy: float | None = None
    source: str | None = None  # the file's name
    sha256: str | None = None


@dataclass(frozen=True, kw_only=True)
class EvaluationRecord(_PlainRecord):
    """metrics.evaluation: the public benchmarks scored through the installed runtime (export.evaluate)."""

    backend: str | None = None
    precision: str | None = None
    measured: str | None = None  # the date
    machine: str | None = None
    imdb_test: ScoreRecord | None = None
    sst2_test: ScoreRecord | None = None
    sst2_dev: ScoreRecord | None = None
    cad_dev_originals: ScoreRecord | None = None
    cad_dev_revisions: ScoreRecord | None = None
    cad_dev_pairs: ScoreRecord | None = None  # a pair counts when both of its texts are right
    challenge: ScoreRecord | None = None
    NESTED = {
        name: ScoreRecord
        for name in (
            "imdb_test",
            "sst2_test",
            "sst2_dev",
            "cad_dev_originals",
            "cad_dev_revisions",
            "cad_dev_pairs",
            "challenge",
        )
    }


@dataclass(frozen=True, kw_only=True)
class MetricsRecord(_PlainRecord):
    """metrics: the run's figures (validation, test, time)."""

    epochs_run: int | None = None
    best_epoch: int | None = None  # counted from 1
    validation_accuracy: float | None = None
    validation_loss: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_macro_f1: float | None = None
    test_within_one_accuracy: float | None = None  # labels that are numbers (ratings) only
    test_mean_absolute_error: float | None = None  # the same
    test_details: str | None = None  # the reports' file of per-label figures
    training_seconds: float | None = None
    seconds_per_epoch: float | None = None
    refit: RefitRecord | None = None  # None: the validated model itself is shipped
    pretraining: PretrainingRecord | None = None
    evaluation: EvaluationRecord | None = None  # written by export.evaluate
    NESTED = {"refit": RefitRecord, "pretraining": PretrainingRecord, "evaluation": EvaluationRecord}
    OMIT_WHEN_NONE = ("test_within_one_accuracy", "test_mean_absolute_error", "evaluation")


@dataclass(frozen=True, kw_only=True)
class Manifest(_Record):
    """A bundle's manifest.json, checked (`check_manifest`) and typed; `to_dict()` is what is written.

    `training` and `metrics` (the run's settings, data and figures) are only checked for type: the runtime
    never interprets them. A new manifest is made with `dataclasses.replace`."""

    name: str
    model_config: ModelConfig
    tokenizer: TokenizerRecord
    schema_version: int = SCHEMA_VERSION
    created: str | None = None  # when training wrote it (UTC, ISO 8601)
    artifacts: Mapping[str, ArtifactRecord] = field(default_factory=lambda: _EMPTY)  # keyed "keras" or ArtifactKind.key
    padding_states: PaddingStatesRecord | None = None
    parity: Mapping[str, ParityRecord] | None = None
    reports: tuple[FileRecord, ...] | None = None
    metrics: MetricsRecord | None = None
    training: TrainingRecord | None = None
    packaged: PackagedRecord | None = None
    _KEYS = (
        "schema_version",
        "name",
        "created",
        "model_config",
        "tokenizer",
        "training",
        "metrics",
        "reports",
        "artifacts",
        "padding_states",
        "parity",
        "packaged",
    )  # the order a new manifest is written in

    def __post_init__(self):
        # A writer may pass plain dicts: every mapping the manifest holds is read-only.
        for name in ("artifacts", "parity"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "metrics", MetricsRecord.from_dict(self.metrics))
        object.__setattr__(self, "training", TrainingRecord.from_dict(self.training))
        if self.reports is not None:
            object.__setattr__(self, "reports", tuple(self.reports))

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        """The manifest of the bundle in `folder`, read once and checked (every check of `check_manifest`)."""
        data, path = load_manifest_json(folder)
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data, path: Path = Path(MANIFEST_NAME)) -> "Manifest":
        """A manifest from its JSON value; BundleError naming `path` and the key on the first problem."""
        check_manifest(data, path)
        optional = {
            "created": data.get("created") if isinstance(data.get("created"), str) else None,
            "padding_states": PaddingStatesRecord.from_dict(data["padding_states"])
            if "padding_states" in data
            else None,
            "parity": MappingProxyType({key: ParityRecord.from_dict(value) for key, value in data["parity"].items()})
            if "parity" in data
            else None,
            "reports": tuple(FileRecord.from_dict(record) for record in data["reports"]) if "reports" in data else None,
            "metrics": MetricsRecord.from_dict(data.get("metrics")),
            "training": TrainingRecord.from_dict(data.get("training")),
            "packaged": PackagedRecord.from_dict(data.get("packaged")),
        }
        return cls(
            schema_version=data["schema_version"],
            name=data["name"],
            model_config=ModelConfig.from_dict(data["model_config"]),
            tokenizer=TokenizerRecord.from_dict(data["tokenizer"]),
            artifacts=MappingProxyType(
                {key: ArtifactRecord.from_dict(record) for key, record in data["artifacts"].items()}
            ),
            **optional,
            **cls._split(data, cls._KEYS),
        )

    def artifact(self, kind: ArtifactKind) -> ArtifactRecord | None:
        return self.artifacts.get(kind.key)

    def parity_of(self, key: str) -> ParityRecord | None:
        return (self.parity or {}).get(key)

    def file_records(self) -> list[FileRecord]:
        """Every file of the bundle but the manifest itself."""
        return [
            self.tokenizer.vocabulary,
            *self.artifacts.values(),
            *([self.padding_states] if self.padding_states else []),
            *(self.reports or ()),
        ]

    def _known(self) -> dict:
        known = {
            "schema_version": self.schema_version,
            "name": self.name,
            "created": self.created,
            "model_config": self.model_config.to_dict(),
            "tokenizer": self.tokenizer,
            "training": self.training,
            "metrics": self.metrics,
            "reports": self.reports,
            "artifacts": dict(self.artifacts),
            "padding_states": self.padding_states,
            "parity": dict(self.parity) if self.parity is not None else None,
            "packaged": self.packaged,
        }
        return {key: value for key, value in known.items() if value is not None}


# The plain records check_manifest checks the fields of, by key.
PLAIN_RECORDS = (("metrics", MetricsRecord), ("training", TrainingRecord), ("packaged", PackagedRecord))


def check_manifest(manifest, path: Path) -> None:
    """Every key the runtime, export and tests read, with its type; raise BundleError on the first miss."""
    check_structure(manifest, path)
    for key, record in PLAIN_RECORDS:
        if key in manifest:
            check_plain(require(manifest, key, dict, path, ""), record, path, key)
