"""Writing a model bundle (runtime/bundle.py is the module to import): every file under a temporary
name moved into place, the one writer of a manifest, and a whole bundle built in a staging folder
that replaces only a bundle (`check_replaceable`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl  # holds a staging folder while it is in use; POSIX only
except ImportError:  # pragma: no cover - Windows: no lock, and no stale folder is removed
    fcntl = None

from runtime.bundle_checks import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    TOKENIZER_MODULE,
    BundleError,
    check_values,
    read_regular,
)
from runtime.manifest_records import ArtifactRecord, Manifest


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_manifest(folder: str | Path, manifest: "Manifest | dict") -> None:
    """Write manifest.json, the one writer of a manifest (a Manifest's `to_dict()`, or a plain dict
    from code that edits it as JSON); refuse one that `read_manifest` would refuse as too large."""
    if isinstance(manifest, Manifest):
        manifest = manifest.to_dict()
    check_values(manifest, Path(folder) / MANIFEST_NAME)
    size = len(json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8")) + 1
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{Path(folder) / MANIFEST_NAME}: would be {size:,} bytes, over the "
            f"{MAX_MANIFEST_BYTES:,} a bundle's manifest may have"
        )
    write_json(Path(folder) / MANIFEST_NAME, manifest)


def copy_bundle(source: str | Path, destination: str | Path, keep: Callable[[str, ArtifactRecord], bool]) -> Path:
    """A new bundle in `destination` with `source`'s vocabulary and padding states and only the
    artifacts `keep(key, record)` accepts (their files, records and parity), without reports: e.g.
    the few MiB one device is sent. Files are copied, then the manifest is written last."""
    manifest = Manifest.read(source)
    artifacts = {key: record for key, record in manifest.artifacts.items() if keep(key, record)}
    source, destination = Path(source), Path(destination)
    destination.mkdir(parents=True)
    files = [manifest.tokenizer.vocabulary, manifest.padding_states, *artifacts.values()]
    for record in filter(None, files):
        shutil.copy2(source / record.file, destination / record.file)
    parity = manifest.parity and {key: value for key, value in manifest.parity.items() if key in artifacts}
    write_manifest(destination, dataclasses.replace(manifest, artifacts=artifacts, parity=parity, reports=None))
    return destination


def is_bundle(folder: str | Path) -> bool:
    """Whether `folder` holds a manifest this project wrote: a regular manifest.json with a
    schema_version and the tokenizer module of runtime.text. Its other keys are not checked, so
    a bundle of an older schema, or a damaged one, can still be replaced."""
    try:
        manifest = json.loads(read_regular(Path(folder) / MANIFEST_NAME, MAX_MANIFEST_BYTES))
    except (BundleError, ValueError, RecursionError):
        return False
    return (
        isinstance(manifest, dict)
        and type(manifest.get("schema_version")) is int
        and isinstance(manifest.get("tokenizer"), dict)
        and manifest["tokenizer"].get("module") == TOKENIZER_MODULE
    )


def check_replaceable(target: str | Path, protected=()) -> None:
    """Refuse, with a BundleError, a folder that writing a bundle to `target` must not replace.

    The one rule for every command that replaces a folder (training.fit --overwrite, the
    exporters): `target` must have a UTF-8 name; if it exists, it must be a real folder (not a
    link) holding a bundle (`is_bundle`), and neither be nor hold any `protected` path (the
    training data), whatever its manifest says. Nothing is touched either way.
    """
    target = Path(target)
    try:
        os.fsdecode(target).encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError(f"{os.fsdecode(target)!r}: the folder name is not valid UTF-8; choose another") from None
    if not os.path.lexists(target):
        return
    if target.is_symlink():
        raise BundleError(f"{target}: a symbolic link; name the folder itself")
    if not target.is_dir():
        raise BundleError(f"{target}: exists and is not a folder; refusing to replace it")
    real = target.resolve()
    for path in protected:
        if path is None:
            continue
        path = Path(path).resolve()
        if path == real or real in path.parents:
            raise BundleError(
                f"{target}: holds the training data ({path}); refusing to replace it, choose another output folder"
            )
    if not is_bundle(target):
        raise BundleError(
            f"{target}: not a model bundle (no {MANIFEST_NAME} written by this project); "
            "refusing to replace it, choose another output folder"
        )


@contextlib.contextmanager
def staging_folder(target: Path, copy_from: Path | None = None, protected=()) -> Iterator[Path]:
    """A private folder beside `target` (optionally a copy of `copy_from`'s files); it replaces
    `target` only if the block succeeds, and is removed in any case. `target` is checked by
    `check_replaceable` before and again just before it is replaced (a long run gives time for
    the folder to change)."""
    target = Path(target)
    check_replaceable(target, protected)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.resolve().parent))
    held = None
    try:
        held = _hold_folder(staging)  # while held it is in use: remove_stale_staging leaves it alone
        if copy_from is not None:
            for source in Path(copy_from).iterdir():
                if source.is_file() and not source.is_symlink():
                    shutil.copy2(source, staging / source.name)
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be read by anyone
        check_replaceable(target, protected)
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if held is not None:
            os.close(held)


def _hold_folder(folder: Path) -> int | None:
    """A descriptor of `folder` holding an exclusive flock on it, released when closed (or when the
    process dies, so a folder nobody holds is a killed run's leftover)."""
    if fcntl is None:
        return None
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def remove_stale_staging(target: str | Path) -> list[Path]:
    """Remove the staging folders of `target` (`.NAME.staging-XXXXXXXX` beside it) that no process
    holds: a killed run's leftovers. One in use by a live run is locked and stays. Returns those removed."""
    target = Path(target)
    if fcntl is None or not target.parent.is_dir():
        return []
    pattern = re.compile(re.escape(f".{target.name}.staging-") + r"[a-z0-9_]{8}")
    removed = []
    for path in target.resolve().parent.iterdir():
        if not pattern.fullmatch(path.name):
            continue
        try:
            handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # not a real folder (a link, a file) or gone: not ours to remove
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path)
            removed.append(path)
        except OSError:  # held by a live run (BlockingIOError), or it could not be removed
            pass
        finally:
            os.close(handle)
    return removed


def _replace_folder(staging: Path, target: Path) -> None:
    """Move a fully written folder into place; the previous one stays until the new one is there.
    Only `staging_folder` calls it, after `check_replaceable`."""
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.previous-{os.getpid()}")
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup)
