"""Over-the-air model updates from a TUF repository (`python -m export.publish` makes one):

    python -m runtime.update --repository URL --models DIR --trust PUB.pem [--root 1.root.json]
                             [--model NAME] [--timeout SECONDS] [--rollback]

DIR holds `versions/N/` (unpacked bundles), `current` (a symbolic link to one of them, what the
device serves), `tuf/` (the client's trusted metadata; `--root` seeds it on the first run only)
and `.lock`. An update: TUF refresh (signed, versioned, expiring metadata: rollback, freeze and
mix-and-match refused), the newest version of the model downloaded size-capped and checked
against the TUF length and sha256, unpacked (regular files only, flat) into a hidden folder,
then the bundle signature (`--trust`), then the bundle loads and answers; only then is it
renamed to versions/N and `current` switched by os.replace of a new link (atomic). The previous
version is kept for `--rollback`; older ones are removed. A killed run leaves only hidden
leftovers, removed by the next run. A run has --timeout seconds in all: a repository that
trickles bytes (slow retrieval, which TUF's gap timeout alone never ends) is given up, its partial
files removed. Exit status: 0 updated or up to date, 1 refused, failed or timed out (one `error:`
line; `current` unchanged), 2 usage, 3 another updater is running.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import sys
import tarfile
import threading
from pathlib import Path

from runtime.bundle import BundleError
from runtime.signing import verify_bundle

MAX_BUNDLE_BYTES = 512 << 20  # a device bundle is tens of MiB; TUF also caps at the recorded length
MAX_MEMBERS = 64
BUSY = 3
TIMEOUT = 1800  # seconds for a whole run: 25 MiB at 120 kbit/s, a slow mobile link
METADATA_FOLDER = "tuf"  # under --models: the TUF metadata the device trusts, root.json first


class UpdateTimeout(BaseException):
    """The run's deadline passed. A BaseException, raised by the alarm inside whatever was running:
    the libraries' `except Exception` (TUF wraps download errors) must not swallow it."""


class UpdateError(Exception):
    """An update refused or failed: one line; the device keeps its current version."""


@contextlib.contextmanager
def locked(models: Path):
    """One updater at a time per models folder (flock: released by the kernel if killed)."""
    models.mkdir(parents=True, exist_ok=True)
    with open(models / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateError("another updater is running on this folder") from None
        yield


def clean_leftovers(models: Path) -> None:
    """What a killed run leaves: partial downloads, unpacked folders and links not yet switched."""
    for path in [*(models / "versions").glob(".*"), *models.glob(".current.*"), *models.glob(".download*")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def installed(models: Path) -> list[int]:
    versions = models / "versions"
    return sorted(int(p.name) for p in versions.iterdir() if p.name.isdigit()) if versions.is_dir() else []


def current_version(models: Path) -> int | None:
    link = models / "current"
    if not link.is_symlink():
        return None
    name = Path(os.readlink(link)).name
    return int(name) if name.isdigit() else None


def switch(models: Path, version: int) -> None:
    """Point `current` at versions/N atomically: a new link under a hidden name, renamed over it."""
    temporary = models / f".current.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    os.symlink(Path("versions") / str(version), temporary)
    os.replace(temporary, models / "current")
    _fsync_folder(models)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def safe_extract(archive: Path, destination: Path) -> None:
    """Unpack regular files with plain names only: no links, devices, folders or paths out."""
    destination.mkdir(parents=True)
    total = 0
    with tarfile.open(archive, mode="r:") as tar:
        for count, member in enumerate(tar, 1):
            name = member.name
            if count > MAX_MEMBERS or not member.isreg() or "/" in name or "\\" in name or name in ("", ".", ".."):
                raise UpdateError(f"{archive.name}: member {name!r} is not a plain file of a bundle")
            total += member.size
            if total > MAX_BUNDLE_BYTES:
                raise UpdateError(f"{archive.name}: unpacks to more than {MAX_BUNDLE_BYTES:,} bytes")
            source = tar.extractfile(member)
            with source, open(destination / name, "xb") as target:
                shutil.copyfileobj(source, target)
                target.flush()
                os.fsync(target.fileno())


def check_loads(folder: Path) -> None:
    """The bundle's own checks (manifest, sha256s, parity, fingerprint), and one answer."""
    from runtime.classifier import SentimentClassifier

    try:
        with SentimentClassifier.from_bundle(folder) as classifier:
            classifier.classify("A wonderful film with a brilliant cast.")
    except Exception as error:  # a new version that does not load or answer is refused, whatever the cause
        raise UpdateError(f"the new version does not load: {' '.join(str(error).split())[:300]}") from None


def _updater(models: Path, url: str, root: Path | None):
    from tuf.ngclient import Updater

    metadata = models / METADATA_FOLDER
    metadata.mkdir(parents=True, exist_ok=True)
    bootstrap = None
    if not (metadata / "root.json").is_file():
        if root is None:
            raise UpdateError("first run: give the repository's trusted root with --root 1.root.json")
        bootstrap = root.read_bytes()
    url = url.rstrip("/")
    return Updater(str(metadata), f"{url}/metadata/", str(models), f"{url}/targets/", bootstrap=bootstrap)


def newest(models: Path, name: str | None):
    """The newest target NAME/N.tar (the only model when no name is given): (N, TargetFile)."""
    # ngclient lists no targets, but after refresh() its metadata folder holds the targets
    # metadata it has just verified (it writes a role only once verified): read that with tuf's own API.
    from tuf.api.metadata import Metadata

    targets = Metadata.from_file(str(models / METADATA_FOLDER / "targets.json")).signed.targets
    found = []
    for path, info in targets.items():
        model, _, file = path.partition("/")
        if file.endswith(".tar") and file[:-4].isdigit() and (name is None or model == name):
            found.append((int(file[:-4]), model, info))
    if name is None and len({model for _, model, _ in found}) > 1:
        raise UpdateError("the repository holds several models; choose one with --model NAME")
    if not found:
        raise UpdateError(f"no version of {name or 'any model'} in the repository")
    version, _, info = max(found, key=lambda item: item[0])
    return version, info


def update(url: str, models: Path, trust: Path, root: Path | None = None, name: str | None = None) -> str:
    updater = _updater(models, url, root)
    updater.refresh()
    version, info = newest(models, name)
    if version in installed(models) and current_version(models) == version:
        return f"up to date: version {version}"
    if info.length > MAX_BUNDLE_BYTES:
        raise UpdateError(f"version {version} is {info.length:,} bytes, over {MAX_BUNDLE_BYTES:,}")
    download = models / f".download.{os.getpid()}.tar"
    updater.download_target(info, str(download))  # length and sha256 checked by TUF
    partial = models / "versions" / f".{version}.{os.getpid()}"
    (models / "versions").mkdir(exist_ok=True)
    safe_extract(download, partial)
    download.unlink()
    verify_bundle(partial, trust)
    check_loads(partial)
    final = models / "versions" / str(version)
    if final.exists():  # refused or rolled back before: replace it with what was just verified
        shutil.rmtree(final)
    os.replace(partial, final)
    previous = current_version(models)
    switch(models, version)
    for old in installed(models):
        if old not in (version, previous):
            shutil.rmtree(models / "versions" / str(old), ignore_errors=True)
    return f"updated to version {version}" + (f" (previous {previous} kept)" if previous else "")


def rollback(models: Path) -> str:
    current = current_version(models)
    older = [version for version in installed(models) if current is None or version < current]
    if not older:
        raise UpdateError("no previous version to roll back to")
    switch(models, older[-1])
    return f"rolled back to version {older[-1]}"


@contextlib.contextmanager
def deadline(seconds: float):
    """UpdateTimeout if the block runs longer than `seconds` (SIGALRM: it interrupts a blocked
    read). Only in the main thread, where signals arrive; elsewhere the block runs unbounded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise UpdateTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(args: argparse.Namespace) -> str:
    """Under the lock: what a killed run left is removed before and after."""
    clean_leftovers(args.models)
    try:
        with deadline(args.timeout):
            if args.rollback:
                return rollback(args.models)
            return update(args.repository, args.models, args.trust, args.root, args.model)
    finally:
        clean_leftovers(args.models)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.update", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", help="the TUF repository's URL (metadata/ and targets/ below it)")
    parser.add_argument("--models", required=True, type=Path, help="the device's models folder")
    parser.add_argument("--trust", type=Path, help="PEM public key whose bundle signature is required")
    parser.add_argument("--root", type=Path, help="first run only: the repository's 1.root.json")
    parser.add_argument("--model", help="the model's name, where the repository holds several")
    parser.add_argument("--rollback", action="store_true", help="switch back to the previous version")
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT, help=f"seconds for the whole run (default {TIMEOUT}); then exit 1"
    )
    args = parser.parse_args(argv)
    if not 0 < args.timeout < float("inf"):
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if not args.rollback and (args.repository is None or args.trust is None):
        parser.error("--repository and --trust are required to update")
    from tuf.api.exceptions import DownloadError, RepositoryError

    try:
        with locked(args.models):
            message = run(args)
    except UpdateError as error:
        print(f"error: {error}", file=sys.stderr)
        return BUSY if "another updater" in str(error) else 1
    except UpdateTimeout:
        print(
            f"error: the update did not finish within {args.timeout:g} s (--timeout)",
            file=sys.stderr,
        )
        return 1
    except (BundleError, RepositoryError, DownloadError, OSError, tarfile.TarError) as error:
        print(f"error: {type(error).__name__}: {' '.join(str(error).split())[:300]}", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
