"""Bundle signatures with OpenSSF model-signing ("bring your own key": an elliptic-curve key pair,
fully offline). `python -m export.sign` writes SIGNATURE_NAME inside the bundle; it covers every
file of the folder but itself, so a file added, removed or changed after signing is refused.

The signature file is not in the manifest (it signs the manifest), and loading reads only the
files the manifest records, so an unsigned loader ignores it. model-signing is the `fleet` extra:
it is imported only when a trusted key is given.
"""

from __future__ import annotations

from pathlib import Path

from runtime.bundle import BundleError

SIGNATURE_NAME = "model.sig"  # inside the bundle folder, beside manifest.json


def _hashing_config():
    from model_signing import hashing

    # Symbolic links are refused by model-signing's default; the signature itself is not hashed.
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_NAME])


def sign_bundle(folder: str | Path, private_key: str | Path) -> Path:
    """Sign every file of `folder` with `private_key` (PEM, elliptic curve); the signature path."""
    try:
        import model_signing  # noqa: F401
    except ImportError as error:
        raise BundleError(f"signing needs model-signing (pip install '.[fleet]'): {error}") from None
    from model_signing import signing

    folder = Path(folder)
    signature = folder / SIGNATURE_NAME
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=Path(private_key))
        config.set_hashing_config(_hashing_config()).sign(folder, signature)
    except (OSError, ValueError, TypeError) as error:
        raise BundleError(f"{private_key}: cannot sign with this key ({error})") from None
    return signature


def verify_bundle(folder: str | Path, trust: str | Path) -> None:
    """Raise BundleError (one line) unless `folder` carries a valid signature by the key in `trust`
    (a PEM public key) over exactly the files it holds."""
    folder, trust = Path(folder), Path(trust)
    signature = folder / SIGNATURE_NAME
    try:
        from model_signing import verifying
    except ImportError as error:
        raise BundleError(f"--trust needs model-signing (pip install '.[fleet]'): {error}") from None
    if not trust.is_file():
        raise BundleError(f"{trust}: no such public key file")
    if signature.is_symlink() or not signature.is_file():
        raise BundleError(f"{folder}: not signed ({SIGNATURE_NAME} missing); a trusted signature is required")
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=trust)
    except (OSError, ValueError, TypeError) as error:
        raise BundleError(f"{trust}: not a usable public key ({error})") from None
    try:
        config.set_hashing_config(_hashing_config()).verify(folder, signature)
    except Exception as error:  # model-signing raises ValueError and others; any failure refuses
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise BundleError(f"{folder}: signature not valid for {trust.name}: {reason}") from None
