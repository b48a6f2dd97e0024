"""The all-or-nothing export, on top of export/: an Exporter is one format's converter (after
Hugging Face Optimum's exporters: the format, how it writes its artifacts, then the shared
validation). Its export reads the parity reviews, copies the bundle into a staging folder, converts
into it (export.tflite's or export.onnx's write_artifacts), checks parity there (export.parity),
puts back what the bundle had for any int8 artifact that failed, and swaps the staging folder in.
Only the exporters import this module; nothing it imports imports it."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from export import common, parity, validate
from export.config import PADDED_GRAPHS, ExportError, graphs_of
from runtime import bundle

# write_artifacts(staging, manifest, config, trained, precisions): the converter, writing each
# artifact with its record (common.write_and_record) into the staging folder.
WriteArtifacts = Callable[[Path, bundle.Manifest, object, object, tuple], None]


@dataclass(frozen=True)
class Exporter:
    """One format's exporter: the backend whose artifacts it writes (a runtime.backends registry
    name) and its converter. Validation is the same for every format (export.parity)."""

    backend: str
    write_artifacts: WriteArtifacts

    def export(
        self,
        folder: str | Path,
        data_source: str | None = None,
        parity_limit: int | None = common.QUICK_PARITY_REVIEWS,
        precisions: tuple[str, ...] = bundle.PRECISIONS,
    ) -> bundle.Manifest:
        return export_bundle(folder, self.backend, self.write_artifacts, data_source, parity_limit, precisions)


def export_bundle(
    folder: str | Path,
    backend: str,
    write_artifacts: WriteArtifacts,
    data_source: str | None,
    parity_limit: int | None,
    precisions: tuple[str, ...] = bundle.PRECISIONS,
) -> bundle.Manifest:
    """Export one backend's artifacts of `precisions`, each all or nothing; return the new manifest.

    The parity reviews are read first, so missing data fails before any work. The artifacts are
    written by `write_artifacts(staging, manifest, config, trained, precisions)` into a staging
    copy of the bundle and proven there on real test reviews. A float32 artifact that fails means
    the conversion is wrong: nothing replaces the bundle. An int8 one that fails (quantization
    changed too many answers) is left out, the bundle keeping what it had for it, the rest is
    swapped in, and ExportError then names it and what to do. With no parity_limit the artifacts
    land unproven, and the runtime refuses them until `python -m export.parity` passes.

    The bundle is locked for the whole run (common.bundle_lock): a second export of it fails at
    once with BundleLocked. Under the lock, the staging folders a killed export left are removed.
    """
    folder = Path(folder)
    with common.bundle_lock(folder):
        bundle.remove_stale_staging(folder)  # a killed export's copy; under the lock no export of it is live
        exported, left_out = stage_and_swap(folder, backend, write_artifacts, data_source, parity_limit, precisions)
    if left_out:
        names = ", ".join(left_out)
        raise ExportError(
            parity.failure_message(left_out) + f"\nThe artifacts that passed were written to "
            f"{folder}; {names} {'was' if len(left_out) == 1 else 'were'} not. Rerun with --precision float32 to export "
            "float32 only, or check parity on more test texts (more data, or a larger --test-split "
            "when training): on few texts a few changed labels are many points (docs/export.md)"
        )
    return exported


def stage_and_swap(
    folder: Path,
    backend: str,
    write_artifacts: WriteArtifacts,
    data_source: str | None,
    parity_limit: int | None,
    precisions: tuple[str, ...],
) -> tuple[bundle.Manifest, dict]:
    """export_bundle's work, under the lock: the new manifest, and the int8 artifacts left out."""
    manifest = common.load_trained(folder)[0]  # a bundle that cannot be exported fails before the data is read
    reviews = validate.test_reviews(data_source, parity_limit, manifest) if parity_limit else None
    left_out = {}
    with bundle.staging_folder(folder, copy_from=folder) as staging:
        (staging / common.LOCK_NAME).unlink(missing_ok=True)  # the copy of the lock is no lock: not part of the bundle
        original, (manifest, config, trained) = manifest, common.load_trained(staging)
        write_artifacts(staging, manifest, config, trained, precisions)
        common.record_artifacts(staging, {}, padding_states=common.ensure_padding_states(staging, trained, config))
        keys = [
            bundle.artifact_key(backend, graph, precision) for graph in graphs_of(config) for precision in precisions
        ]
        if reviews is not None:
            left_out = check_parity(staging, folder, original, trained, reviews, keys)
        else:
            print(
                f"note: parity skipped; the runtime refuses these artifacts until python -m export.parity "
                f"--model {folder} passes",
                file=sys.stderr,
            )
        drop_unproven(staging, folder, original, keys)
        exported = bundle.Manifest.read(staging)
    return exported, left_out


def check_parity(staging: Path, folder: Path, original: bundle.Manifest, trained, reviews, keys: list[str]) -> dict:
    """Parity of the new artifacts in `staging`. A float32 one that fails raises ExportError (the
    conversion went wrong); the int8 ones that fail are replaced by what the bundle had for them,
    and returned by key with their results."""
    results = parity.check_reviews(staging, trained, reviews, keys, raise_on_failure=False)
    failed = {key: result for key, result in results.items() if not result.passed}
    artifacts = bundle.Manifest.read(staging).artifacts
    if any(artifacts[key].precision == "float32" for key in failed):
        raise ExportError(
            parity.failure_message(failed) + "\nNothing was written: a float32 artifact must "
            "compute what Keras computes, so the conversion went wrong (docs/export.md)"
        )
    keep_previous(staging, folder, original, list(failed))
    return failed


def states_sha256(manifest: bundle.Manifest) -> str | None:
    """The sha256 of the manifest's padding states, None if it has none."""
    return manifest.padding_states.sha256 if manifest.padding_states is not None else None


def drop_unproven(staging: Path, folder: Path, original: bundle.Manifest, exported: list[str]) -> None:
    """The bundle's other artifacts that start from the padding states (int8 ones left as they
    were, the other backend's) were proven with the old states: if those changed, they go."""
    manifest = bundle.Manifest.read(staging)
    if states_sha256(manifest) != states_sha256(original):
        unwritten = [
            key for key, record in manifest.artifacts.items() if record.graph in PADDED_GRAPHS and key not in exported
        ]
        # Against a bundle that had none of them: nothing is put back.
        keep_previous(staging, folder, dataclasses.replace(original, artifacts={}), unwritten)


def keep_previous(staging: Path, folder: Path, original: bundle.Manifest, keys: list[str]) -> None:
    """Put back in `staging` what the bundle had for these artifacts (file, record and parity
    record) before this export, or nothing if it had none, so a failed artifact never lands. An old
    artifact that starts from padding states is kept only if the states are the same bytes."""
    if not keys:
        return
    manifest = bundle.Manifest.read(staging)
    same_states = states_sha256(manifest) == states_sha256(original)
    # The records put back go last, where editing the manifest as JSON put them.
    artifacts = {key: record for key, record in manifest.artifacts.items() if key not in keys}
    parity = manifest.parity
    if parity is not None:
        parity = {key: result for key, result in parity.items() if key not in keys}
    for key in keys:
        new, old = manifest.artifacts[key], original.artifacts.get(key)
        (staging / new.file).unlink(missing_ok=True)
        if old is not None and (same_states or old.graph not in PADDED_GRAPHS):
            shutil.copy2(folder / old.file, staging / old.file)
            artifacts[key] = old
            if original.parity_of(key) is not None:
                parity = {**(parity or {}), key: original.parity_of(key)}
    bundle.write_manifest(staging, dataclasses.replace(manifest, artifacts=artifacts, parity=parity))
