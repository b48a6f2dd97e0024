"""What both exporters share: reading the trained bundle, the inference graphs, the padding
states, writing an artifact with its manifest record and fingerprint, and the all-or-nothing
export: everything is written into a staging copy of the bundle, proven there by the parity
check, and swapped in only when that passes."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from runtime import backends, bundle, cli
from runtime.config import ModelConfig


# Test reviews in the parity check that ends every export (the full check: python -m export.parity).
# At 1,000, half a point of int8 accuracy is 5 reviews; at 200 it was 1, so two unlucky label
# flips failed an export whose int8 artifact loses 0.07 points on all 25,000 reviews.
QUICK_PARITY_REVIEWS = 1000


class ExportError(Exception):
    """A bundle that cannot be exported, or an artifact that fails its checks."""


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
    manifest = bundle.read_manifest(folder)
    record = manifest["artifacts"].get("keras")
    if record is None or not (folder / record["file"]).is_file():
        raise bundle.BundleError(f"{folder}: no model.keras; train one with python -m training.fit")
    import keras

    model = keras.models.load_model(bundle.verify_file(folder, record), compile=False)
    return manifest, bundle.model_config(manifest), model


def inference_model(trained, config: ModelConfig, graph: str, batch_size: int | None, unroll: bool = False,
                    library=None):
    """The dropout-free graph for `graph`: "full" takes padded reviews, "cached" a review's own
    tokens of any length plus the LSTM state (h0, c0) to start from, and "steps" the cached
    graph's inputs, answering after every token. library: see `build_inference_model` (default Keras 3)."""
    from training.model import build_inference_model

    if graph == "full":
        return build_inference_model(trained, config, batch_size=batch_size, unroll=unroll, library=library)
    return build_inference_model(trained, config, batch_size=batch_size, sequence_length=None,
                                 initial_state=True, library=library, return_sequences=graph == bundle.STEPS_GRAPH)


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
    import keras

    token = keras.Input(shape=(1,), batch_size=1, dtype="int32")
    h0 = keras.Input(shape=(config.lstm_units,), batch_size=1)
    c0 = keras.Input(shape=(config.lstm_units,), batch_size=1)
    embedded = keras.layers.Embedding(config.vocab_size, config.embedding_dim, name="embedding")(token)
    _, h, c = keras.layers.LSTM(config.lstm_units, return_state=True, name="lstm")(embedded, initial_state=[h0, c0])
    step = keras.Model([token, h0, c0], [h, c])
    for name in ("embedding", "lstm"):
        step.get_layer(name).set_weights(trained.get_layer(name).get_weights())
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


def fingerprint(manifest: dict, model, graph: str) -> dict:
    """What an artifact was exported for; stored inside the model file, checked by the runtime."""
    config = bundle.model_config(manifest)
    return {"vocabulary_sha256": manifest["tokenizer"]["vocabulary"]["sha256"], "labels": list(config.labels),
            "graph": graph, "sequence_length": config.sequence_length,
            "inputs": [input_name(tensor) for tensor in model.inputs], "outputs": ["probabilities"]}


def write_and_record(folder: Path, manifest: dict, backend: str, graph: str, precision: str, model,
                     write: Callable[[Path], None], **details) -> Path:
    """Write one device artifact and add its record to the manifest at once, so the manifest
    never describes a file that has since been replaced; the artifact's old parity record goes."""
    config = bundle.model_config(manifest)
    path = write_artifact(folder, bundle.artifact_filename(backend, graph, precision), write)
    record = {
        **bundle.file_record(path), "format": backend, "graph": graph, "precision": precision, **details,
        "inputs": [input_name(tensor) for tensor in model.inputs], "outputs": ["probabilities"],
        "batch_size": model.inputs[0].shape[0],
        "sequence_length": config.sequence_length if graph == "full" else None,
        "labels": list(config.labels), "vocabulary_sha256": manifest["tokenizer"]["vocabulary"]["sha256"],
    }
    record_artifacts(folder, {bundle.artifact_key(backend, graph, precision): record})
    return path


def record_artifacts(folder: Path, records: dict, **extra) -> dict:
    """Add artifact records (and any top-level entries) to the manifest, dropping the parity
    records of the artifacts replaced; return the manifest."""
    manifest = bundle.read_manifest(folder)
    manifest["artifacts"].update(records)
    for key in records:
        manifest.get("parity", {}).pop(key, None)
    manifest.update(extra)
    bundle.write_manifest(folder, manifest)
    return manifest


def ensure_padding_states(folder: Path, trained, config: ModelConfig) -> dict:
    """Write padding_states.npy for the cached graphs; return its manifest record."""
    states = padding_states(trained, config)
    path = write_artifact(folder, bundle.PADDING_STATES_NAME, lambda tmp: _save_npy(tmp, states))
    return {**bundle.file_record(path), "steps": len(states) - 1}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # np.save on a path would append ".npy" to the temp name
        np.save(handle, array, allow_pickle=False)


# The padding-state files the cached and per-step graphs start from (the full graph does not).
_PADDED_GRAPHS = ("cached", bundle.STEPS_GRAPH)


def export_bundle(folder: str | Path, backend: str, write_artifacts: Callable, data_source: str | None,
                  parity_limit: int | None, precisions: tuple[str, ...] = bundle.PRECISIONS) -> dict:
    """Export one backend's artifacts of `precisions`, each all or nothing; return the new manifest.

    The parity reviews are read first, so missing data fails before any work. The artifacts are
    written by `write_artifacts(staging, manifest, config, trained, precisions)` into a staging
    copy of the bundle and proven there on real test reviews. A float32 artifact that fails means
    the conversion is wrong: nothing replaces the bundle. An int8 one that fails (quantization
    changed too many answers) is left out, the bundle keeping what it had for it, the rest is
    swapped in, and ExportError then names it and what to do. With no parity_limit the artifacts
    land unproven, and the runtime refuses them until `python -m export.parity` passes.
    """
    from export import parity

    folder = Path(folder)
    manifest = load_trained(folder)[0]  # a bundle that cannot be exported fails before the data is read
    reviews = parity.test_reviews(data_source, parity_limit, manifest) if parity_limit else None
    left_out = []
    with bundle.staging_folder(folder, copy_from=folder) as staging:
        original, (manifest, config, trained) = manifest, load_trained(staging)
        write_artifacts(staging, manifest, config, trained, precisions)
        record_artifacts(staging, {}, padding_states=ensure_padding_states(staging, trained, config))
        keys = [bundle.artifact_key(backend, graph, precision)
                for graph in bundle.ARTIFACT_GRAPHS for precision in precisions]
        if reviews is not None:
            results = parity.check_reviews(staging, trained, reviews, keys, raise_on_failure=False)
            failed = {key: result for key, result in results.items() if not result["passed"]}
            if any(key.endswith("float32") for key in failed):
                raise ExportError(parity.failure_message(failed) + "\nNothing was written: a float32 artifact must "
                                  "compute what Keras computes, so the conversion went wrong (docs/export.md)")
            keep_previous(staging, folder, original, list(failed))
            left_out = [(key, failed[key]) for key in failed]
        else:
            print(f"note: parity skipped; the runtime refuses these artifacts until python -m export.parity "
                  f"--model {folder} passes", file=sys.stderr)
        # The bundle's other artifacts that start from the padding states (int8 ones left as they
        # were, the other backend's) were proven with the old states: if those changed, they go.
        if bundle.read_manifest(staging)["padding_states"]["sha256"] != original.get("padding_states", {}).get("sha256"):
            unwritten = [key for key, record in bundle.read_manifest(staging)["artifacts"].items()
                         if record.get("graph") in _PADDED_GRAPHS and key not in keys]
            keep_previous(staging, folder, {"artifacts": {}}, unwritten)
        exported = bundle.read_manifest(staging)
    if left_out:
        names = ", ".join(key for key, _ in left_out)
        raise ExportError(parity.failure_message(dict(left_out)) + f"\nThe artifacts that passed were written to "
                          f"{folder}; {names} {'was' if len(left_out) == 1 else 'were'} not. Rerun with --precision float32 to export "
                          "float32 only, or check parity on more test texts (more data, or a larger --test-split "
                          "when training): on few texts a few changed labels are many points (docs/export.md)")
    return exported


def keep_previous(staging: Path, folder: Path, original: dict, keys: list[str]) -> None:
    """Put back in `staging` what the bundle had for these artifacts (file, record and parity
    record) before this export, or nothing if it had none, so a failed artifact never lands. An old
    artifact that starts from padding states is kept only if the states are the same bytes."""
    if not keys:
        return
    manifest = bundle.read_manifest(staging)
    same_states = manifest["padding_states"]["sha256"] == original.get("padding_states", {}).get("sha256")
    for key in keys:
        new, old = manifest["artifacts"].pop(key), original["artifacts"].get(key)
        manifest.get("parity", {}).pop(key, None)
        (staging / new["file"]).unlink(missing_ok=True)
        if old is not None and (same_states or old["graph"] not in _PADDED_GRAPHS):
            shutil.copy2(folder / old["file"], staging / old["file"])
            manifest["artifacts"][key] = old
            if key in original.get("parity", {}):
                manifest.setdefault("parity", {})[key] = original["parity"][key]
    bundle.write_manifest(staging, manifest)


def export_arguments(module: str, description: str) -> argparse.ArgumentParser:
    """The options every export command takes."""
    parser = cli.parser(module, description)
    parser.add_argument("--model", type=Path, required=True,
                        help="bundle folder, e.g. runs/imdb-lstm-<time> (the shipped models/imdb-lstm is "
                             "replaced only when named)")
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA"),
                        help="the data the bundle was trained on, for the parity check on its test texts "
                             "(IMDB: aclImdb archive or folder, $IMDB_DATA, else download)")
    parser.add_argument("--precision", choices=("all", *bundle.PRECISIONS), default="all",
                        help="the artifacts to export: float32 only leaves the bundle's int8 ones as they are")
    parser.add_argument("--parity-limit", type=int, default=QUICK_PARITY_REVIEWS,
                        help="test reviews for the parity check after export (0 skips it, and the runtime "
                             "then refuses the artifacts until python -m export.parity passes)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converters' log lines")
    return parser


def precisions_of(choice: str) -> tuple[str, ...]:
    """--precision's value as the precisions to export."""
    return bundle.PRECISIONS if choice == "all" else (choice,)


def run_export(job: Callable[[], object], verbose: bool = False) -> int:
    """Run an export command's job; turn the expected failures into a message and exit code 1."""
    from training.data import DataError
    from training.quiet import quiet

    quiet(verbose)
    backends.show_native_logs = verbose
    try:
        job()
    except (bundle.BundleError, backends.BackendError, ExportError, DataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
