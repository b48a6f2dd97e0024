"""Publish a signed bundle to a TUF repository (The Update Framework, python-tuf):

    python -m export.publish --model models/NAME --repository DIR [--keys DIR]
    python -m export.publish --repository DIR --rotate ROLE        # a new key for one role
    python -m export.publish --repository DIR --model models/NAME --revoke VERSION

The repository is static files, served as they are by any web server: `metadata/` (N.root.json
for every root version, targets.json, snapshot.json, timestamp.json) and `targets/NAME/N.tar`
(the bundle as a tar archive, version N). It is created, with one ECDSA key a role (root,
targets, snapshot, timestamp) in `--keys` (default DIR/../keys: keep it off the web server), on
first use. Expiry (EXPIRY): root a year, targets three months, snapshot a week, timestamp a
day; a device refuses expired metadata (a freeze), so re-run publish (any action re-signs
snapshot and timestamp) within a day, e.g. `--refresh` from a timer. Exit status: 0 done,
1 refused (one `error:` line), 2 usage.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from runtime.bundle import BundleError, Manifest, atomic_path
from runtime.signing import SIGNATURE_NAME

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}


class PublishError(Exception):
    """A refused publication: one line."""


def bundle_archive(folder: Path) -> bytes:
    """The bundle as an uncompressed tar: its regular files only, flat, reproducible."""
    if not (folder / SIGNATURE_NAME).is_file():
        raise PublishError(f"{folder}: not signed; run python -m export.sign first")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_symlink() or not path.is_file():
                raise PublishError(f"{path}: not a regular file; a bundle holds only files")
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


def _expiry(role: str) -> datetime:
    return (datetime.now(timezone.utc) + EXPIRY[role]).replace(microsecond=0)


def _signer(keys: Path, role: str, create: bool):
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    path = keys / f"{role}.pem"
    if create:
        signer = CryptoSigner.generate_ecdsa()
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = signer._private_key.private_bytes(  # securesystemslib has no public PEM export
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with atomic_path(path) as temporary:
            temporary.write_bytes(pem)
            temporary.chmod(0o600)
        path.chmod(0o600)
        return signer
    if not path.is_file():
        raise PublishError(f"{path}: the {role} key is missing")
    return CryptoSigner(serialization.load_pem_private_key(path.read_bytes(), password=None))


class Repository:
    """The four metadata files of a repository folder, and the keys that sign them."""

    def __init__(self, folder: Path, keys: Path):
        from tuf.api.metadata import Metadata

        self.folder, self.keys, self.metadata = folder, keys, folder / "metadata"
        if not (self.metadata / "1.root.json").is_file():
            self._create()
        roots = sorted(self.metadata.glob("*.root.json"), key=lambda p: int(p.name.split(".")[0]))
        self.roles = {"root": Metadata.from_file(str(roots[-1]))}
        for role in ROLES[1:]:
            self.roles[role] = Metadata.from_file(str(self.metadata / f"{role}.json"))

    def _create(self) -> None:
        from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

        self.roles = {
            "root": Metadata(Root(expires=_expiry("root"), consistent_snapshot=False)),
            "targets": Metadata(Targets(expires=_expiry("targets"))),
            "snapshot": Metadata(Snapshot(expires=_expiry("snapshot"))),
            "timestamp": Metadata(Timestamp(expires=_expiry("timestamp"))),
        }
        for role in ROLES:
            self.roles["root"].signed.add_key(_signer(self.keys, role, create=True).public_key, role)
        self.metadata.mkdir(parents=True, exist_ok=True)
        (self.folder / "targets").mkdir(exist_ok=True)
        for role in ROLES[1:]:
            self._write(role, bump=False)
        self._write("root", bump=False)  # last: 1.root.json marks a complete repository

    def _write(self, role: str, bump: bool = True, signers=None) -> None:
        from tuf.api.serialization.json import JSONSerializer

        metadata = self.roles[role]
        if bump:
            metadata.signed.version += 1
        metadata.signed.expires = _expiry(role)
        metadata.signatures.clear()
        for signer in signers or [_signer(self.keys, role, create=False)]:
            metadata.sign(signer, append=True)
        name = f"{metadata.signed.version}.root.json" if role == "root" else f"{role}.json"
        with atomic_path(self.metadata / name) as temporary:
            temporary.write_bytes(metadata.to_bytes(JSONSerializer(compact=False)))

    def commit_targets(self) -> None:
        """Re-sign targets, then snapshot, then timestamp: what a device reads first comes last."""
        from tuf.api.metadata import MetaFile

        self._write("targets")
        self.roles["snapshot"].signed.meta["targets.json"] = MetaFile(version=self.roles["targets"].signed.version)
        self._write("snapshot")
        self.roles["timestamp"].signed.snapshot_meta = MetaFile(version=self.roles["snapshot"].signed.version)
        self._write("timestamp")

    def add_version(self, model: Path) -> str:
        """The signed bundle as the next version of its model; versions are never reused."""
        from tuf.api.metadata import TargetFile

        name = Manifest.read(model).name
        data = bundle_archive(model)
        version = self.roles["targets"].signed.version + 1
        path = f"{name}/{version}.tar"
        local = self.folder / "targets" / path
        local.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(local) as temporary:
            temporary.write_bytes(data)
        self.roles["targets"].signed.targets[path] = TargetFile.from_file(path, str(local), ["sha256"])
        self.commit_targets()
        return path

    def revoke(self, name: str, version: int) -> str:
        path = f"{name}/{version}.tar"
        if self.roles["targets"].signed.targets.pop(path, None) is None:
            raise PublishError(f"{path}: no such version in the repository")
        self.commit_targets()
        (self.folder / "targets" / path).unlink(missing_ok=True)
        return path

    def rotate(self, role: str) -> None:
        """A new key for `role`: a new root version names it (signed by the old and new root keys
        when root rotates, so devices trusting the old root follow), then every role is re-signed."""
        root = self.roles["root"]
        old = _signer(self.keys, "root", create=False)
        for keyid in list(root.signed.roles[role].keyids):
            root.signed.revoke_key(keyid, role)
        new = _signer(self.keys / ".new", role, create=True)
        root.signed.add_key(new.public_key, role)
        signers = [old, new] if role == "root" else [old]
        self._write("root", signers=signers)
        (self.keys / ".new" / f"{role}.pem").replace(self.keys / f"{role}.pem")
        self.commit_targets()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--repository", required=True, type=Path, help="the repository folder (served as is)")
    parser.add_argument("--model", type=Path, help="the signed bundle folder to publish (or whose --revoke)")
    parser.add_argument("--keys", type=Path, help="the private keys' folder (default: REPOSITORY/../keys)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--rotate", choices=ROLES, help="give this role a new key")
    action.add_argument("--revoke", type=int, metavar="VERSION", help="remove this version of --model")
    action.add_argument("--refresh", action="store_true", help="only re-sign snapshot and timestamp")
    args = parser.parse_args(argv)
    if args.model is None and not (args.rotate or args.refresh):
        parser.error("--model is required to publish or revoke")
    keys = args.keys or args.repository.resolve().parent / "keys"
    try:
        repository = Repository(args.repository, keys)
        if args.rotate:
            repository.rotate(args.rotate)
            print(f"rotated the {args.rotate} key")
        elif args.refresh:
            repository.commit_targets()
        elif args.revoke is not None:
            print(f"revoked {repository.revoke(Manifest.read(args.model).name, args.revoke)}")
        else:
            print(f"published {repository.add_version(args.model)}")
    except (PublishError, BundleError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
