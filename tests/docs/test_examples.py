"""Issue #34 item 6: the answers the docs show are what the shipped bundle answers now (docs/serving.md
showed 0.9958 where the model answered 0.9666). They are written by `python scripts/update_readme.py`
(scripts/doc_examples.py); after shipping a new model, run it again and this test passes again."""

from __future__ import annotations

import re

import pytest

from runtime import backends
from tests.conftest import ROOT

if "tflite" not in backends.available_backends():
    pytest.skip("the docs show LiteRT's answers; no TFLite interpreter here", allow_module_level=True)

from scripts import doc_examples  # noqa: E402


def block(text: str, name: str) -> str | None:
    found = re.search(rf"<!-- begin:{name} -->\n(.*?)\n?<!-- end:{name} -->", text, re.S)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def examples():
    from runtime import SentimentClassifier

    with SentimentClassifier.from_bundle(backend=doc_examples.BACKEND) as classifier:
        if classifier.describe()["interpreter"] != "ai_edge_litert.interpreter":
            pytest.skip("the docs show LiteRT's digits; this TFLite interpreter may differ in the last ones")
    return doc_examples.examples()


def test_every_example_answer_in_the_docs_is_the_shipped_bundle_s(examples):
    assert {(example.path, example.block) for example in examples} >= {
        ("docs/raspberry-pi.md", "pi-cli"),
        ("docs/serving.md", "v1-predict"),
        ("docs/serving.md", "oip-infer"),
        ("docs/serving.md", "tritonclient"),
    }
    stale = [
        f"{example.path} block {example.block}"
        for example in examples
        if block((ROOT / example.path).read_text(), example.block) != example.body
    ]
    assert not stale, f"run python scripts/update_readme.py: {stale} differ from what the shipped bundle answers"


def test_the_pi_example_is_what_the_cli_prints(examples):
    """The generator's CLI lines are the command's own output, not a copy of its format."""
    import subprocess
    import sys

    pi = next(example for example in examples if example.block == "pi-cli")
    result = subprocess.run(
        [sys.executable, "-m", "runtime.predict", "--backend", doc_examples.BACKEND, *doc_examples.CLI_REVIEWS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert pi.body == f"```\n{result.stdout.rstrip()}\n```"
