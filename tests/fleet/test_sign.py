"""export.sign and --trust: a signed bundle loads only with a valid signature by a trusted key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from export import sign
from runtime import SentimentClassifier, bundle, predict
from runtime.signing import SIGNATURE_NAME, verify_bundle


def test_signed_bundle_loads_with_trust_and_without(model, keys):
    private, public = keys["release"]
    assert sign.main(["--model", str(model), "--key", str(private)]) == 0
    assert (model / SIGNATURE_NAME).is_file()
    verify_bundle(model, public)
    with SentimentClassifier.from_bundle(model, backend="onnx", trust=public) as classifier:
        assert classifier.classify("A wonderful film.").label
    with SentimentClassifier.from_bundle(model, backend="onnx") as classifier:  # the signature is ignored
        assert classifier.classify("A wonderful film.").label


def test_untrusted_key_is_refused(model, keys):
    sign.main(["--model", str(model), "--key", str(keys["stranger"][0])])
    with pytest.raises(bundle.BundleError, match="signature not valid"):
        SentimentClassifier.from_bundle(model, backend="onnx", trust=keys["release"][1])


def test_unsigned_bundle_refused_only_when_trust_is_set(model, keys):
    with pytest.raises(bundle.BundleError, match="not signed"):
        verify_bundle(model, keys["release"][1])
    SentimentClassifier.from_bundle(model, backend="onnx").close()


@pytest.mark.parametrize("change", ["tamper", "add", "remove"])
def test_changed_bundle_is_refused(model, keys, change):
    sign.main(["--model", str(model), "--key", str(keys["release"][0])])
    if change == "tamper":
        with open(model / "vocab.txt", "ab") as handle:
            handle.write(b"x")
    elif change == "add":
        (model / "extra.txt").write_text("hi")
    else:
        (model / "model.cached.onnx").unlink()
    with pytest.raises(bundle.BundleError, match="signature not valid"):
        verify_bundle(model, keys["release"][1])


def test_unproven_bundle_is_not_signed(model, keys, capsys):
    manifest = bundle.read_manifest(model)
    manifest["parity"]["onnx-cached-float32"]["passed"] = False
    bundle.write_manifest(model, manifest)
    assert sign.main(["--model", str(model), "--key", str(keys["release"][0])]) == 1
    assert "no passing parity record" in capsys.readouterr().err
    assert not (model / SIGNATURE_NAME).exists()


def test_cli_trust_refusal_is_one_error_line(model, keys):
    sign.main(["--model", str(model), "--key", str(keys["stranger"][0])])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.predict",
            "--model",
            str(model),
            "--backend",
            "onnx",
            "--trust",
            str(keys["release"][1]),
            "A fine film.",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "signature not valid" in lines[0], result.stderr
    assert predict  # the command under test


def test_server_refuses_an_unsigned_bundle_with_trust(model, keys):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.serve",
            "--model",
            str(model),
            "--trust",
            str(keys["release"][1]),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not signed" in errors[0], result.stderr  # the server listens, then loads
    assert "Traceback" not in result.stderr
