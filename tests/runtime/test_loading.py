"""runtime/loading.py on its own: a bundle's files become a verified tokenizer and interpreter only
if the manifest proves them (the classifier's answers over the same checks: test_classifier.py)."""

import dataclasses
import shutil

import pytest

from runtime import bundle, loading
from runtime.bundle import ArtifactKind, BundleError
from runtime.loading import ClassifierOptions, UnverifiedArtifactWarning
from tests.runtime.conftest import AVAILABLE

KIND = ArtifactKind(AVAILABLE[0], "cached", "float32")


def test_the_tokenizer_has_the_words_the_manifest_records(bundle_dir):
    opened = bundle.Bundle.open(bundle_dir)
    tokenizer = loading.load_tokenizer(opened)
    assert len(tokenizer.words) == opened.manifest.tokenizer.words
    assert tokenizer.vocab_size <= opened.config.vocab_size


def test_an_artifact_without_a_passing_parity_record_is_refused_unless_allowed(bundle_dir, tmp_path):
    folder = shutil.copytree(bundle_dir, tmp_path / "bundle", ignore=shutil.ignore_patterns("*.keras"))
    manifest = bundle.read_manifest(folder)
    manifest["parity"][KIND.key]["passed"] = False
    bundle.write_manifest(folder, manifest)
    opened = bundle.Bundle.open(folder)
    with pytest.raises(BundleError, match="no passing parity record for this file"):
        loading.artifact_record(opened, KIND, allow_unverified=False)
    with pytest.warns(UnverifiedArtifactWarning, match="loaded without a passing parity record"):
        record = loading.artifact_record(opened, KIND, allow_unverified=True)
    assert record.file == bundle.artifact_filename(*dataclasses.astuple(KIND))


def test_a_model_file_exported_for_other_labels_is_refused(bundle_dir):
    opened = bundle.Bundle.open(bundle_dir)
    record = loading.artifact_record(opened, KIND, allow_unverified=False)
    model = loading.load_artifact(opened, record, ClassifierOptions(folder=bundle_dir, threads=1))
    assert model.input_shapes
    with pytest.raises(BundleError, match="was exported for another labels than this bundle's"):
        loading._check_fingerprint(opened.path(record), {"labels": ["a", "b"]}, {"labels": ["negative", "positive"]})
    with pytest.raises(BundleError, match="carries no export fingerprint"):
        loading._check_fingerprint(opened.path(record), None, {"labels": ["negative", "positive"]})


def test_options_refuse_what_this_runtime_does_not_know():
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        ClassifierOptions(precision="int4").check()
    with pytest.raises(ValueError, match="unknown graph 'fused'"):
        ClassifierOptions(graph="fused").check()
