"""What the exporters and the parity check share: reading the trained bundle, the inference graphs
(built by training.model), the padding states, writing an artifact with its manifest record and
fingerprint, writing parity records, progress on stderr, the bundle's export lock, and the
commands' options and exit codes. The all-or-nothing export that uses these is export.run."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import stat
import sys
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from export.config import PADDED_GRAPHS, QUICK_PARITY_REVIEWS, ExportError
from runtime import backends, bundle, cli
from runtime.config import ModelConfig
from training import model as training_model
from training.data import DataError
from training.quiet import quiet

# The file inside a bundle whose flock an export (or export.parity writing its records) holds
# for its whole run, and the exit code of a command that finds it held: EX_TEMPFAIL of
# sysexits.h, "try again later", so a script can tell a busy bundle from a failed export.
LOCK_NAME = ".export.lock"
EXIT_LOCKED = 75


class BundleLocked(ExportError):
    """Another process is exporting (or proving) this bundle."""


class Stage:
    """Progress of one long stage (parity on 25,000 reviews runs for minutes) on stderr: a
    keras Progbar on a terminal, else one line as the stage starts, so a log shows where it is."""

    def __init__(self, name: str, total: int, unit: str = "texts"):
        self.bar = None
        if sys.stderr.isatty():
            import keras

            print(f"{name}:", file=sys.stderr)
            with contextlib.redirect_stdout(sys.stderr):  # Progbar writes to stdout, which is for results
                self.bar = keras.utils.Progbar(total, unit_name=unit.rstrip("s"))
        else:
            print(f"{name}: {total:,} {unit}", file=sys.stderr, flush=True)

    def update(self, done: int) -> None:
        if self.bar is not None:
            with contextlib.redirect_stdout(sys.stderr):
                self.bar.update(done)


def load_trained(folder: str | Path):
    """The manifest, model config and trained Keras model of a bundle."""
    folder = Path(folder)
    manifest = bundle.Manifest.read(folder)
    record = manifest.artifacts.get("keras")
    if record is None or not (folder / record.file).is_file():
        raise bundle.BundleError(f"{folder}: no model.keras; train one with python -m training.fit")
    trained = training_model.load_model(bundle.verify_file(folder, record))
    check_trained_config(folder, manifest.model_config, trained)
    return manifest, manifest.model_config, trained


def check_trained_config(folder: Path, config: ModelConfig, trained) -> None:
    """ExportError naming the first manifest model_config key the Keras model contradicts: a
    relabelled manifest ended the conversion in a Keras traceback."""
    import keras

    def lstm_of(layer):
        return layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer

    recurrent = [layer for layer in trained.layers if isinstance(lstm_of(layer), keras.layers.LSTM)]
    embedding = next((layer for layer in trained.layers if isinstance(layer, keras.layers.Embedding)), None)
    found = {
        "vocab_size": embedding.input_dim if embedding is not None else None,
        "embedding_dim": embedding.output_dim if embedding is not None else None,
        "layers": len(recurrent),
        "lstm_units": lstm_of(recurrent[0]).units if recurrent else None,
        "bidirectional": bool(recurrent) and isinstance(recurrent[0], keras.layers.Bidirectional),
        "attention": any(layer.name == training_model.ATTENTION_LAYER for layer in trained.layers),
    }
    for key, value in found.items():
        if getattr(config, key) != value:
            raise ExportError(
                f"{folder}: the manifest's model_config.{key} is {getattr(config, key)!r}, but model.keras has {value!r}"
            )


def inference_model(
    trained, config: ModelConfig, graph: str, batch_size: int | None, unroll: bool = False, library=None
):
    """The dropout-free graph for `graph`: "full" takes padded reviews, "cached" a review's own
    tokens of any length plus the LSTM state (h0, c0) to start from, and "steps" the cached
    graph's inputs, answering after every token. library: see `build_inference_model` (default Keras 3).
    A model of the options starts from no state: its cached and steps graphs take the tokens only."""
    if not config.uses_padding_states:
        return training_model.build_inference_model(
            trained, config, batch_size=batch_size, sequence_length=None, return_sequences=graph == bundle.STEPS_GRAPH
        )
    if graph == "full":
        return training_model.build_inference_model(
            trained, config, batch_size=batch_size, unroll=unroll, library=library
        )
    return training_model.build_inference_model(
        trained,
        config,
        batch_size=batch_size,
        sequence_length=None,
        initial_state=True,
        library=library,
        return_sequences=graph == bundle.STEPS_GRAPH,
    )


def input_signature(model) -> list:
    """The model's inputs as named TensorSpecs with their static shapes (batch included)."""
    import tensorflow as tf

    return [tf.TensorSpec(tensor.shape, tensor.dtype, name=input_name(tensor)) for tensor in model.inputs]


def input_name(tensor) -> str:
    return tensor.name.split(":")[0]


def serving_function(model):
    """A tf.function over the model's named inputs with static shapes, returning "probabilities"."""
    import tensorflow as tf

    names = [input_name(tensor) for tensor in model.inputs]

    @tf.function(input_signature=input_signature(model))
    def serve(*inputs):
        return {"probabilities": model(dict(zip(names, inputs)) if len(names) > 1 else inputs[0])}

    return serve


def export_saved_model(model, folder: str) -> None:
    """A SavedModel whose one signature is `serving_function(model)`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serving_function(model))
    archive.write_out(folder, verbose=False)


def padding_states(trained, config: ModelConfig) -> np.ndarray:
    """The LSTM state (h, c) after k padding steps, for k = 0, 1, ... until it stops changing.

    Shape (steps + 1, 2, lstm_units). Row k is the state a review with k padding ids in front
    starts from; beyond the last row the state is a fixed point, so the last row serves all.
    """
    step = training_model.padding_step_model(trained, config)
    padding = np.zeros((1, 1), np.int32)
    state = np.zeros((2, config.lstm_units), np.float32)
    states = [state]
    for _ in range(config.sequence_length - 1):
        h, c = step.predict_on_batch([padding, state[:1], state[1:]])
        state = np.concatenate([h, c]).astype(np.float32)
        if np.array_equal(state, states[-1]):
            break
        states.append(state)
    return np.stack(states)


def write_artifact(folder: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write a bundle file through a temporary path, so a failure leaves the old file in place."""
    path = folder / name
    try:
        with bundle.atomic_path(path) as temporary:
            write(temporary)
    except PermissionError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    return path


def fingerprint(manifest: bundle.Manifest, model, graph: str) -> dict:
    """What an artifact was exported for; stored inside the model file, checked by the runtime."""
    config = manifest.model_config
    return {
        "vocabulary_sha256": manifest.tokenizer.vocabulary.sha256,
        "labels": list(config.labels),
        "graph": graph,
        "sequence_length": config.sequence_length,
        "inputs": [input_name(tensor) for tensor in model.inputs],
        "outputs": ["probabilities"],
    }


def write_and_record(
    folder: Path,
    manifest: bundle.Manifest,
    backend: str,
    graph: str,
    precision: str,
    model,
    write: Callable[[Path], None],
    **details,
) -> Path:
    """Write one device artifact and add its record to the manifest at once, so the manifest
    never describes a file that has since been replaced; the artifact's old parity record goes."""
    config = manifest.model_config
    path = write_artifact(folder, bundle.artifact_filename(backend, graph, precision), write)
    # Keyword order is the record's key order in manifest.json; the exporter's details (form,
    # quantization, opset) and batch_size, which loading does not read, go into its extras.
    record = bundle.ArtifactRecord.of(
        path,
        format=backend,
        graph=graph,
        precision=precision,
        **details,
        inputs=[input_name(tensor) for tensor in model.inputs],
        outputs=["probabilities"],
        batch_size=model.inputs[0].shape[0],
        sequence_length=None if graph in PADDED_GRAPHS else config.sequence_length,
        labels=list(config.labels),
        vocabulary_sha256=manifest.tokenizer.vocabulary.sha256,
    )
    record_artifacts(folder, {bundle.artifact_key(backend, graph, precision): record})
    return path


def record_artifacts(folder: Path, records: Mapping[str, bundle.ArtifactRecord], **fields) -> bundle.Manifest:
    """Add artifact records (and set any other manifest fields, such as padding_states) in the
    manifest, dropping the parity records of the artifacts replaced; return the manifest."""
    manifest = bundle.Manifest.read(folder)
    parity = manifest.parity
    if parity is not None:  # a manifest without parity records gets none
        parity = {key: result for key, result in parity.items() if key not in records}
    manifest = dataclasses.replace(manifest, artifacts={**manifest.artifacts, **records}, parity=parity, **fields)
    bundle.write_manifest(folder, manifest)
    return manifest


def ensure_padding_states(folder: Path, trained, config: ModelConfig) -> bundle.PaddingStatesRecord | None:
    """Write padding_states.npy for the cached graphs; return its manifest record. A model of the
    options has none (None): it masks its padding instead."""
    if not config.uses_padding_states:
        return None
    states = padding_states(trained, config)
    path = write_artifact(folder, bundle.PADDING_STATES_NAME, lambda tmp: _save_npy(tmp, states))
    return bundle.PaddingStatesRecord.of(path, steps=len(states) - 1)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # np.save on a path would append ".npy" to the temp name
        np.save(handle, array, allow_pickle=False)


def record_parity(folder: Path, records: dict[str, bundle.ParityRecord]) -> None:
    """Write parity records into the manifest's "parity" entry, one per artifact key."""
    manifest = bundle.Manifest.read(folder)
    bundle.write_manifest(folder, dataclasses.replace(manifest, parity={**(manifest.parity or {}), **records}))


def export_arguments(module: str, description: str) -> argparse.ArgumentParser:
    """The options every export command takes."""
    parser = cli.parser(module, description)
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="bundle folder, e.g. runs/imdb-lstm-<time> (the shipped models/imdb-lstm is replaced only when named)",
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="the data the bundle was trained on, for the parity check on its test texts "
        "(IMDB: aclImdb archive or folder, $IMDB_DATA, else download)",
    )
    parser.add_argument(
        "--precision",
        choices=("all", *bundle.PRECISIONS),
        default="all",
        help="the artifacts to export: float32 only leaves the bundle's int8 ones as they are",
    )
    parser.add_argument(
        "--parity-limit",
        type=int,
        default=QUICK_PARITY_REVIEWS,
        help="test reviews for the parity check after export (0 skips it, and the runtime "
        "then refuses the artifacts until python -m export.parity passes)",
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converters' log lines")
    return parser


def precisions_of(choice: str) -> tuple[str, ...]:
    """--precision's value as the precisions to export."""
    return bundle.PRECISIONS if choice == "all" else (choice,)


def wrote_line(folder, manifest: bundle.Manifest, backend: str, precisions) -> str:
    """An export's last line: the bundle's files of this backend and these precisions, and where."""
    kinds = (record.kind for record in manifest.artifacts.values())
    files = sorted(kind.filename for kind in kinds if kind and kind.backend == backend and kind.precision in precisions)
    return f"wrote {Path(folder)}/: {', '.join(files)}"


def run_command(job: Callable[[], object], verbose: bool = False, done: Callable[[object], str] | None = None) -> int:
    """Run an export or parity command's job; turn the expected failures into a message and exit
    code 1 (EXIT_LOCKED when another export holds the bundle). `done(result)`, if given, is the
    line printed when the job succeeds."""
    quiet(verbose)
    try:
        result = job()
    except BundleLocked as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_LOCKED
    except (bundle.BundleError, backends.BackendError, ExportError, DataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if done is not None:
        print(done(result))
    return 0


@contextlib.contextmanager
def bundle_lock(folder: str | Path):
    """Hold the bundle's export lock (an exclusive flock on LOCK_NAME inside it) for the block;
    BundleLocked at once if another process holds it. Two exports of one bundle would each swap
    in a copy made before the other's work landed, so one's artifacts would be lost.

    The lock file is opened without following a link and never truncated or written; it is
    removed on release while still held, which is why a lock is taken only on the file the name
    still points to. A folder that is not a real one (missing, a link) is not locked: the export
    refuses it on its own."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        yield
        return
    path = folder / LOCK_NAME
    handle = _acquire(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if _same_file(path, handle):  # after a swap the name is the new bundle's: leave it
                path.unlink()
        os.close(handle)


def _acquire(path: Path) -> int:
    """A descriptor of the lock file at `path` holding its flock."""
    flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO
    while True:
        try:
            handle = os.open(path, flags, 0o644)
        except OSError as error:  # a link (ELOOP), no permission
            raise ExportError(f"cannot open the export lock {path}: {error.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                raise ExportError(f"{path}: the export lock is not a regular file; remove it")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise BundleLocked(
                f"{path.parent}: another export of this bundle is running (it holds {path}); "
                "run this again when it has finished"
            ) from None
        except BaseException:
            os.close(handle)
            raise
        if _same_file(path, handle):
            return handle
        os.close(handle)  # the holder removed it as we opened it: take the one there now


def _same_file(path: Path, handle: int) -> bool:
    try:
        named, held = os.stat(path, follow_symlinks=False), os.fstat(handle)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
