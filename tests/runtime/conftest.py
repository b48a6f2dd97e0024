"""Runtime tests use the shipped bundle (or $IMDB_SENTIMENT_MODEL) and need no TensorFlow."""

import os
from pathlib import Path

import pytest

from runtime import backends, bundle
from tests.conftest import SHIPPED_BUNDLE

BUNDLE = Path(os.environ.get("IMDB_SENTIMENT_MODEL", SHIPPED_BUNDLE))
AVAILABLE = backends.available_backends()

POSITIVE = "A wonderful film with a brilliant cast. I loved every minute and the ending moved me to tears."
NEGATIVE = "The worst movie I have seen in years: a dull plot, wooden acting and a complete waste of time."


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    return BUNDLE


@pytest.fixture(params=AVAILABLE)
def backend(request) -> str:
    return request.param


def copy_without_per_step_artifacts(folder: Path, destination: Path) -> Path:
    """A copy of the bundle with no per-step artifact (files and manifest records): one that cannot explain."""
    return bundle.copy_bundle(folder, destination, lambda key, record: record.graph != bundle.STEPS_GRAPH)
