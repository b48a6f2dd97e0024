"""Sign a proven bundle: `python -m export.sign --model models/NAME --key KEY.pem`.

Signing comes after parity, never before: a bundle whose device artifacts lack a passing parity
record for their exact bytes is refused. The signature (runtime.signing.SIGNATURE_NAME) is
written inside the bundle and covers every other file. Exit status: 0 signed, 1 refused or
failed (one `error:` line), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.bundle import BundleError, Manifest
from runtime.signing import sign_bundle


def check_proven(folder: Path) -> None:
    """Raise BundleError unless every device artifact has a passing parity record for its sha256."""
    manifest = Manifest.read(folder)
    devices = {key: record for key, record in manifest.artifacts.items() if record.format != "keras"}
    if not devices:
        raise BundleError(f"{folder}: no device artifacts to sign; export them first")
    for key, record in devices.items():
        parity = manifest.parity.get(key)
        if parity is None or not parity.proves(record):
            raise BundleError(f"{folder}: {key} has no passing parity record for its bytes; run export.parity first")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.sign", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="the bundle folder")
    parser.add_argument("--key", required=True, type=Path, help="PEM elliptic-curve private key")
    args = parser.parse_args(argv)
    try:
        check_proven(args.model)
        signature = sign_bundle(args.model, args.key)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"signed {args.model} -> {signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
