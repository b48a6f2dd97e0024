"""The bundle's promise on a device: the manifest accounts for every file, and a hostile or
damaged bundle is refused with a BundleError naming the file and key, without a traceback from
a library and without opening anything outside the bundle folder."""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import SentimentClassifier, backends, bundle, predict
from tests.runtime.conftest import AVAILABLE

OPENED: list[str] | None = None  # paths opened while a test records them (see `recording_opens`)


def _audit(event: str, args: tuple) -> None:
    if event == "open" and OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only inside a test


def load_recording_opens(folder, *args, **kwargs):
    """from_bundle's outcome (a classifier or the exception) and every path it opened."""
    global OPENED
    OPENED = []
    try:
        return SentimentClassifier.from_bundle(folder, *args, **kwargs), OPENED
    except Exception as error:  # noqa: BLE001 - the test asserts which
        return error, OPENED
    finally:
        OPENED = None


def test_every_file_of_the_bundle_is_recorded_with_its_sha256(bundle_dir):
    records = {record.file: record for record in bundle.Manifest.read(bundle_dir).file_records()}
    files = sorted(path.name for path in bundle_dir.iterdir() if path.name != bundle.MANIFEST_NAME)
    assert [name for name in files if name not in records] == []
    for name in files:
        bundle.verify_file(bundle_dir, records[name])


def test_every_shipped_device_artifact_has_a_passing_parity_record_for_its_bytes(bundle_dir):
    manifest = bundle.read_manifest(bundle_dir)
    for key, record in manifest["artifacts"].items():
        if record["format"] != "keras":
            assert manifest["parity"][key]["passed"] is True
            assert manifest["parity"][key]["sha256"] == record["sha256"]


# The hostile-bundle table -----------------------------------------------------------------------


def rewrite(folder, change):
    """Apply `change` to the manifest's JSON object and write it back."""
    manifest = json.loads((folder / bundle.MANIFEST_NAME).read_text())
    change(manifest)
    (folder / bundle.MANIFEST_NAME).write_text(json.dumps(manifest))


def artifact(manifest):
    return manifest["artifacts"][bundle.artifact_key(AVAILABLE[0], "cached", "float32")]


def record_file(folder, manifest, record, content: bytes):
    """Replace a bundle file and update its record, as a careful attacker would."""
    (folder / record["file"]).write_bytes(content)
    record.update(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())


def replace_file_and_record(folder, name, content: bytes, key_path):
    def change(manifest):
        record = manifest
        for key in key_path:
            record = record[key]
        record_file(folder, manifest, record, content)
        if key_path == ["tokenizer", "vocabulary"]:  # vouch for it everywhere the manifest can
            for entry in manifest["artifacts"].values():
                entry["vocabulary_sha256"] = record["sha256"]

    rewrite(folder, change)


def states(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def vocabulary_words(folder):
    return (folder / bundle.VOCABULARY_NAME).read_text().splitlines()


MUTATIONS = {
    # paths: nothing outside the folder is read, whatever the manifest says
    "vocabulary ../ path": (
        lambda f, o: rewrite(f, lambda m: m["tokenizer"]["vocabulary"].update(file=f"../{o.name}/vocab.txt")),
        "plain file name",
    ),
    "artifact absolute path to a real model": (
        lambda f, o: rewrite(f, lambda m: artifact(m).update(file=str(o / artifact(m)["file"]))),
        "plain file name",
    ),
    "vocabulary /etc/passwd": (
        lambda f, o: rewrite(f, lambda m: m["tokenizer"]["vocabulary"].update(file="/etc/passwd")),
        "plain file name",
    ),
    "file is the manifest": (
        lambda f, o: rewrite(f, lambda m: artifact(m).update(file="manifest.json")),
        "plain file name",
    ),
    "file is ..": (lambda f, o: rewrite(f, lambda m: artifact(m).update(file="..")), "plain file name"),
    "vocabulary symlink outside": (
        lambda f, o: ((f / "vocab.txt").unlink(), (f / "vocab.txt").symlink_to(o / "vocab.txt")),
        "leads outside the bundle",
    ),
    "artifact symlink outside": (
        lambda f, o: (
            (f / artifact(bundle.read_manifest(f))["file"]).unlink(),
            (f / artifact(bundle.read_manifest(f))["file"]).symlink_to(o / artifact(bundle.read_manifest(o))["file"]),
        ),
        "leads outside the bundle",
    ),
    # structure and types
    "no tokenizer": (lambda f, o: rewrite(f, lambda m: m.pop("tokenizer")), "tokenizer is missing"),
    "no model_config": (lambda f, o: rewrite(f, lambda m: m.pop("model_config")), "model_config is missing"),
    "no sha256": (lambda f, o: rewrite(f, lambda m: artifact(m).pop("sha256")), "sha256 is missing"),
    "no bytes": (lambda f, o: rewrite(f, lambda m: artifact(m).pop("bytes")), "bytes is missing"),
    "no file": (lambda f, o: rewrite(f, lambda m: artifact(m).pop("file")), "file is missing"),
    "artifacts a list": (
        lambda f, o: rewrite(f, lambda m: m.update(artifacts=list(m["artifacts"].values()))),
        "artifacts must be dict",
    ),
    "sequence_length a string": (
        lambda f, o: rewrite(f, lambda m: m["model_config"].update(sequence_length="500")),
        "sequence_length must be an integer",
    ),
    "file a number": (lambda f, o: rewrite(f, lambda m: artifact(m).update(file=5)), "file must be str"),
    "bytes a string": (lambda f, o: rewrite(f, lambda m: artifact(m).update(bytes="5")), "bytes must be int"),
    "bytes negative": (lambda f, o: rewrite(f, lambda m: artifact(m).update(bytes=-1)), "must not be negative"),
    "sha256 not hex": (lambda f, o: rewrite(f, lambda m: artifact(m).update(sha256="x" * 64)), "64 lowercase hex"),
    "one label": (lambda f, o: rewrite(f, lambda m: m["model_config"].update(labels=["only"])), "two labels"),
    "unknown config key": (lambda f, o: rewrite(f, lambda m: m["model_config"].update(heads=3)), "unknown keys"),
    "other pad id": (lambda f, o: rewrite(f, lambda m: m["tokenizer"].update(pad_id=5)), "tokenizer.pad_id"),
    "JSON nested 100,000 deep": (
        lambda f, o: (f / "manifest.json").write_text("[" * 100_000 + "]" * 100_000),
        "nested too deeply",
    ),
    "a number of 5,000 digits": (
        lambda f, o: (f / "manifest.json").write_text('{"schema_version": ' + "9" * 5000 + "}"),
        "not valid JSON",
    ),
    "manifest a list": (lambda f, o: (f / "manifest.json").write_text("[]"), "must be an object"),
    "manifest of 2 MiB": (lambda f, o: (f / "manifest.json").write_text(" " * (2 << 20)), "larger than"),
    # files and their contents
    "artifact swapped for another": (
        lambda f, o: shutil.copy(
            f / bundle.artifact_filename(AVAILABLE[0], "cached", "int8"), f / artifact(bundle.read_manifest(f))["file"]
        ),
        "does not match the manifest",
    ),
    "artifact is a folder": (
        lambda f, o: (
            (f / artifact(bundle.read_manifest(f))["file"]).unlink(),
            (f / artifact(bundle.read_manifest(f))["file"]).mkdir(),
        ),
        "not a regular file",
    ),
    "vocabulary is a FIFO": (
        lambda f, o: ((f / "vocab.txt").unlink(), os.mkfifo(f / "vocab.txt")),
        "not a regular file",
    ),
    "padding states of 0 rows": (
        lambda f, o: replace_file_and_record(
            f, bundle.PADDING_STATES_NAME, states(np.zeros((0, 2, 100), np.float32)), ["padding_states"]
        ),
        "padding_states.npy: float32 array of shape (0, 2, 100)",
    ),
    "padding states NaN": (
        lambda f, o: replace_file_and_record(
            f,
            bundle.PADDING_STATES_NAME,
            states(np.full((bundle.read_manifest(f)["padding_states"]["steps"] + 1, 2, 100), np.nan, np.float32)),
            ["padding_states"],
        ),
        "not finite",
    ),
    "padding states not numpy": (
        lambda f, o: replace_file_and_record(f, bundle.PADDING_STATES_NAME, b"\x93NUMPY nonsense", ["padding_states"]),
        "not a numpy array",
    ),
    "vocabulary longer than vocab_size": (
        lambda f, o: replace_file_and_record(
            f,
            bundle.VOCABULARY_NAME,
            "".join(w + "\n" for w in vocabulary_words(f) + ["zzextra1", "zzextra2", "zzextra3"]).encode(),
            ["tokenizer", "vocabulary"],
        ),
        "for a model of 10000 ids",
    ),
    "vocabulary not a word list": (
        lambda f, o: replace_file_and_record(
            f, bundle.VOCABULARY_NAME, b"root:x:0:0:root:/root:/bin/bash\n", ["tokenizer", "vocabulary"]
        ),
        "line 1 is not one word",
    ),
    "vocabulary swapped, every record updated": (
        lambda f, o: replace_file_and_record(
            f,
            bundle.VOCABULARY_NAME,
            "".join(
                w + "\n" for w in [vocabulary_words(f)[1], vocabulary_words(f)[0], *vocabulary_words(f)[2:]]
            ).encode(),
            ["tokenizer", "vocabulary"],
        ),
        "exported for another vocabulary",
    ),
    # proof
    "no parity record": (
        lambda f, o: rewrite(f, lambda m: m["parity"].pop(bundle.artifact_key(AVAILABLE[0], "cached", "float32"))),
        "no passing parity record",
    ),
    "parity failed": (
        lambda f, o: rewrite(
            f, lambda m: m["parity"][bundle.artifact_key(AVAILABLE[0], "cached", "float32")].update(passed=False)
        ),
        "no passing parity record",
    ),
    "parity of other bytes": (
        lambda f, o: rewrite(
            f, lambda m: m["parity"][bundle.artifact_key(AVAILABLE[0], "cached", "float32")].update(sha256="0" * 64)
        ),
        "no passing parity record",
    ),
}


@pytest.fixture
def bundle_and_outside(bundle_dir, tmp_path):
    """A copy of the bundle to damage, and a second copy beside it that must never be opened."""
    folder = shutil.copytree(bundle_dir, tmp_path / "bundle", ignore=shutil.ignore_patterns("model.keras"))
    outside = shutil.copytree(folder, tmp_path / "outside")
    return folder, outside


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_hostile_bundle_is_refused(bundle_and_outside, name):
    folder, outside = bundle_and_outside
    mutate, message = MUTATIONS[name]
    mutate(folder, outside)
    outcome, opened = load_recording_opens(folder, AVAILABLE[0])
    assert isinstance(outcome, bundle.BundleError), outcome
    assert message in str(outcome)
    assert "root:" not in str(outcome)  # no line of another file is quoted
    assert [path for path in opened if os.path.realpath(path).startswith(str(outside))] == []
    assert "/etc/passwd" not in opened  # (an interpreter's first import may read other system files)


@pytest.mark.parametrize(
    "name",
    [
        "vocabulary ../ path",
        "no tokenizer",
        "JSON nested 100,000 deep",
        "padding states NaN",
        "vocabulary is a FIFO",
        "no parity record",
    ],
)
def test_the_cli_reports_a_hostile_bundle_in_one_line(bundle_and_outside, name, capsys):
    folder, outside = bundle_and_outside
    MUTATIONS[name][0](folder, outside)
    assert predict.main(["--model", str(folder), "--backend", AVAILABLE[0], "a fine film"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_each_file_is_opened_once_and_loaded_from_those_bytes(bundle_dir, backend):
    """Finding 4: a file hashed and then opened again could be swapped in between."""
    classifier, opened = load_recording_opens(bundle_dir, backend)
    assert isinstance(classifier, SentimentClassifier)
    inside = [
        os.path.basename(path)
        for path in opened
        if os.path.dirname(os.path.realpath(path)) == str(bundle_dir.resolve())
    ]
    assert sorted(inside) == sorted({*inside}), inside  # no file twice
    assert set(inside) == {
        bundle.MANIFEST_NAME,
        bundle.VOCABULARY_NAME,
        bundle.PADDING_STATES_NAME,
        bundle.artifact_filename(backend, "cached", "float32"),
    }


def test_an_unverified_artifact_loads_only_when_allowed_and_says_so(bundle_and_outside, capsys):
    folder, outside = bundle_and_outside
    MUTATIONS["no parity record"][0](folder, outside)
    with pytest.warns(UserWarning, match="without a passing parity record"):
        classifier = SentimentClassifier.from_bundle(folder, AVAILABLE[0], allow_unverified=True)
    assert classifier.classify("A wonderful film with a brilliant cast.").label == "positive"
    assert predict.main(["--model", str(folder), "--backend", AVAILABLE[0], "--allow-unverified", "a fine film"]) == 0
    assert "warning: " in capsys.readouterr().err


@pytest.mark.parametrize("backend_name", backends.BACKENDS)
def test_a_vocabulary_swap_is_caught_on_every_backend(bundle_and_outside, backend_name):
    """Finding 6: TFLite files carried no fingerprint, so a consistent swap went unnoticed there."""
    if backend_name not in AVAILABLE:
        pytest.skip(f"{backend_name} is not installed here")
    folder, outside = bundle_and_outside
    MUTATIONS["vocabulary swapped, every record updated"][0](folder, outside)
    for graph in bundle.GRAPHS:
        with pytest.raises(bundle.BundleError, match="exported for another vocabulary"):
            SentimentClassifier.from_bundle(folder, backend_name, graph=graph)


# Reading the manifest never blocks; replacing a folder only ever replaces a bundle ------------


def _hangs(call, fifo) -> bool:
    """Whether call() is still blocked after a generous wait; a blocked reader is then released
    by opening the FIFO for writing, so a failing test ends."""
    import threading

    thread = threading.Thread(target=lambda: pytest.raises(bundle.BundleError, call), daemon=True)
    thread.start()
    thread.join(timeout=60)
    blocked = thread.is_alive()
    if blocked:
        with open(fifo, "wb"):
            pass
        thread.join()
    return blocked


def test_a_fifo_named_manifest_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / bundle.MANIFEST_NAME)
    assert not _hangs(lambda: bundle.read_manifest(tmp_path), tmp_path / bundle.MANIFEST_NAME)
    with pytest.raises(bundle.BundleError, match="not a regular file"):
        bundle.read_manifest(tmp_path)
    assert not bundle.is_bundle(tmp_path)


def test_a_manifest_that_is_a_link_or_too_large_is_refused(bundle_dir, tmp_path):
    (tmp_path / bundle.MANIFEST_NAME).symlink_to(bundle_dir / bundle.MANIFEST_NAME)
    with pytest.raises(bundle.BundleError, match="symbolic link"):
        bundle.read_manifest(tmp_path)
    big = tmp_path / "big"
    big.mkdir()
    (big / bundle.MANIFEST_NAME).write_bytes(b" " * (bundle.MAX_MANIFEST_BYTES + 1))
    with pytest.raises(bundle.BundleError, match="larger than"):
        bundle.read_manifest(big)


def _fake_bundle(folder):
    folder.mkdir(parents=True)
    (folder / bundle.MANIFEST_NAME).write_text(
        json.dumps({"schema_version": bundle.SCHEMA_VERSION, "tokenizer": {"module": bundle.TOKENIZER_MODULE}})
    )
    (folder / "vocab.txt").write_text("a\n")
    return folder


def _contents(folder):
    return sorted(
        (str(path.relative_to(folder)), path.read_bytes() if path.is_file() else None) for path in folder.rglob("*")
    )


def test_only_a_bundle_is_replaced(tmp_path):
    old = _fake_bundle(tmp_path / "old")
    with bundle.staging_folder(old) as staging:
        (staging / "new.txt").write_text("new")
    assert [path.name for path in old.iterdir()] == ["new.txt"]
    with bundle.staging_folder(tmp_path / "fresh") as staging:  # a folder that does not exist yet
        (staging / "new.txt").write_text("new")
    assert (tmp_path / "fresh" / "new.txt").is_file()


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda root: (root / "mydata").mkdir() or (root / "mydata" / "notes.txt").write_text("mine"),
            "not a model bundle",
        ),
        (
            lambda root: (root / "mydata").mkdir() or (root / "mydata" / bundle.MANIFEST_NAME).write_text('{"a": 1}'),
            "not a model bundle",
        ),
        (lambda root: (root / "mydata").write_text("a file"), "not a folder"),
        (
            lambda root: (root / "elsewhere").mkdir() or (root / "mydata").symlink_to(root / "elsewhere"),
            "symbolic link",
        ),
    ],
)
def test_anything_but_a_bundle_is_left_untouched(tmp_path, make, message):
    make(tmp_path)
    before = _contents(tmp_path)
    with pytest.raises(bundle.BundleError, match=message):
        with bundle.staging_folder(tmp_path / "mydata") as staging:
            (staging / "new.txt").write_text("new")
    assert _contents(tmp_path) == before


def test_the_folder_of_the_data_or_above_it_is_never_replaced(tmp_path):
    """Even a bundle folder: it holds the data a run reads (finding A)."""
    data = _fake_bundle(tmp_path / "top" / "mydata") / "two.csv"
    data.write_text("text,label\n")
    before = _contents(tmp_path)
    for target in (data.parent, data.parent.parent, data):
        with pytest.raises(bundle.BundleError, match="holds the training data|not a folder"):
            bundle.check_replaceable(target, protected=[data])
    with pytest.raises(bundle.BundleError, match="holds the training data"):
        with bundle.staging_folder(data.parent, protected=[data]):
            pass
    assert _contents(tmp_path) == before
    bundle.check_replaceable(tmp_path / "other", protected=[data])  # a new folder beside it is fine


def test_a_folder_name_that_is_not_utf8_is_refused(tmp_path):
    with pytest.raises(bundle.BundleError, match="not valid UTF-8"):
        with bundle.staging_folder(tmp_path / os.fsdecode(b"\xffmodel")):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_too_large_to_read_is_never_written(tmp_path):
    with pytest.raises(bundle.BundleError, match="over the"):
        bundle.write_manifest(tmp_path, {"metrics": {"counts": [[0] * 1000] * 300}})
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / bundle.MANIFEST_NAME).mkdir()
    with pytest.raises(bundle.BundleError, match="not a regular file"):
        bundle.read_manifest(tmp_path)


# Issue #33, finding 6: values the reader let through, each refused in one line naming the key.
def _with_text(folder, edit):
    """Rewrite manifest.json's text with `edit` (for values json.dumps would not write)."""
    path = folder / bundle.MANIFEST_NAME
    path.write_text(edit(path.read_text()))


def _nested(depth: int) -> object:
    """A value of `depth` nested arrays and objects."""
    value: object = 0
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def _deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth  # json.dumps of the value would itself recurse too deeply


MANIFEST_VALUES = {
    "metrics NaN": (
        lambda f: _with_text(f, lambda t: t.replace('"test_accuracy": ', '"test_accuracy": NaN, "was": ', 1)),
        "metrics.test_accuracy is not a finite number",
    ),
    "metrics -Infinity": (
        lambda f: _with_text(f, lambda t: t.replace('"test_loss": ', '"test_loss": -Infinity, "was": ', 1)),
        "metrics.test_loss is not a finite number",
    ),
    "metrics 1e999": (
        lambda f: rewrite(f, lambda m: m["metrics"]["pretraining"].update(seconds=1e999)),
        "metrics.pretraining.seconds is not a finite number",
    ),
    "name with a lone surrogate": (
        lambda f: rewrite(f, lambda m: m.update(name="imdb\ud800")),
        "name holds a lone surrogate",
    ),
    "key with a lone surrogate": (
        lambda f: rewrite(f, lambda m: m["training"].update({"x\udc00": 1})),
        "training.'x\\udc00' holds a lone surrogate",
    ),
    "600 deep under an unknown key": (
        lambda f: _with_text(f, lambda t: t.replace("{", '{"notes": ' + _deep_text(600) + ", ", 1)),
        "nested too deeply",
    ),
    "900 deep in metrics": (
        lambda f: _with_text(f, lambda t: t.replace('"metrics": {', '"metrics": {"x": ' + _deep_text(900) + ", ", 1)),
        "nested too deeply",
    ),
    "bytes 2**36": (
        lambda f: rewrite(f, lambda m: artifact(m).update(bytes=2**36)),
        f"artifacts.{bundle.artifact_key(AVAILABLE[0], 'cached', 'float32')}.bytes is 68,719,476,736",
    ),
    "bytes 10**30": (lambda f: rewrite(f, lambda m: m["tokenizer"]["vocabulary"].update(bytes=10**30)), "bytes is 1"),
    "created a number": (lambda f: rewrite(f, lambda m: m.update(created=5)), "created must be str, not int"),
    "training.data a string": (
        lambda f: rewrite(f, lambda m: m["training"].update(data="oops")),
        "training.data must be an object or null, not str",
    ),
    "metrics.refit a list": (
        lambda f: rewrite(f, lambda m: m["metrics"].update(refit=[1])),
        "metrics.refit must be an object or null, not list",
    ),
    "metrics.test_accuracy a string": (
        lambda f: rewrite(f, lambda m: m["metrics"].update(test_accuracy="high")),
        "metrics.test_accuracy must be a number or null, not str",
    ),
    "training.data.labels a number": (
        lambda f: rewrite(f, lambda m: m["training"]["data"].update(labels=2)),
        "training.data.labels must be a list of strings or null, not int",
    ),
}


@pytest.mark.parametrize("name", MANIFEST_VALUES)
def test_a_manifest_value_the_typed_records_cannot_hold_is_refused(bundle_and_outside, name, capsys):
    folder, _ = bundle_and_outside
    mutate, message = MANIFEST_VALUES[name]
    mutate(folder)
    with pytest.raises(bundle.BundleError) as raised:
        bundle.Manifest.read(folder)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(folder / bundle.MANIFEST_NAME))
    assert predict.main(["--model", str(folder), "--backend", AVAILABLE[0], "a fine film"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err.encode("ascii", "backslashreplace").decode()


def test_a_manifest_of_the_documented_depth_is_read_and_written_back_as_read(bundle_and_outside):
    """Keys the records do not model keep their values, whatever their types, at up to the limit."""
    folder, _ = bundle_and_outside
    deep = _nested(bundle.MAX_MANIFEST_DEPTH - 3)  # under "training" and "notes", inside the manifest
    rewrite(folder, lambda m: m["training"].update(notes={"deep": deep, "n": 1.5, "s": "é", "z": None}))
    before = json.loads((folder / bundle.MANIFEST_NAME).read_text())
    bundle.write_manifest(folder, bundle.Manifest.read(folder))
    assert json.loads((folder / bundle.MANIFEST_NAME).read_text()) == before
    rewrite(folder, lambda m: m["training"]["notes"].update(deep=[deep]))
    with pytest.raises(bundle.BundleError, match="nested too deeply"):
        bundle.Manifest.read(folder)


def test_a_file_record_is_compared_with_the_file_before_reading(bundle_and_outside):
    """A record that claims a larger file than is there: refused by size, nothing that size allocated."""
    folder, _ = bundle_and_outside
    rewrite(folder, lambda m: m["tokenizer"]["vocabulary"].update(bytes=bundle.MAX_FILE_BYTES))
    manifest = bundle.Manifest.read(folder)
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(bundle.BundleError, match="does not match the manifest"):
            bundle.read_file(folder, manifest.tokenizer.vocabulary)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "imdb\ud800"])
def test_a_manifest_the_reader_would_refuse_is_never_written(tmp_path, value):
    with pytest.raises(bundle.BundleError, match="metrics.loss"):
        bundle.write_manifest(tmp_path, {"metrics": {"loss": value}})
    assert list(tmp_path.iterdir()) == []


def test_a_copy_for_one_device_holds_only_the_artifacts_kept_and_classifies_alike(bundle_dir, tmp_path):
    backend = AVAILABLE[-1]  # onnx where both are installed: not auto's first choice
    kept = f"{backend}-cached-float32"
    copy = bundle.copy_bundle(bundle_dir, tmp_path / "device", lambda key, record: key == kept)
    manifest = bundle.Manifest.read(copy)
    assert list(manifest.artifacts) == [kept] and list(manifest.parity) == [kept] and manifest.reports is None
    files = {
        kept: manifest.artifacts[kept],
        "vocabulary": manifest.tokenizer.vocabulary,
        "padding": manifest.padding_states,
    }
    assert sorted(path.name for path in copy.iterdir()) == sorted(
        [bundle.MANIFEST_NAME] + [r.file for r in files.values()]
    )
    for record in files.values():
        assert hashlib.sha256((copy / record.file).read_bytes()).hexdigest() == record.sha256
    review = "Not bad at all. I was not disappointed in the slightest."
    with (
        SentimentClassifier.from_bundle(copy) as device,
        SentimentClassifier.from_bundle(bundle_dir, backend=backend) as full,
    ):
        assert device.classify(review) == full.classify(review)
    with pytest.raises(FileExistsError):  # never written over
        bundle.copy_bundle(bundle_dir, copy, lambda key, record: True)


def test_the_bundle_code_stays_in_modules_of_at_most_600_lines():
    """Issue #35, item 4: records, checks and writing apart, behind runtime/bundle.py's names."""
    folder = Path(bundle.__file__).parent
    modules = ["bundle.py", "bundle_checks.py", "manifest_records.py", "bundle_write.py"]
    sizes = {name: len((folder / name).read_text().splitlines()) for name in modules}
    assert max(sizes.values()) <= 600, sizes
    assert bundle.Manifest.__module__ == "runtime.manifest_records"
    assert bundle.staging_folder.__module__ == "runtime.bundle_write"
