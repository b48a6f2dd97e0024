"""The answers the docs show as examples, computed from the shipped bundle, so that a retrained and
re-shipped model never leaves an old answer in them. `python scripts/update_readme.py` writes each
into its block (`<!-- begin:NAME -->` ... `<!-- end:NAME -->`); tests/docs/test_examples.py checks
that every block is what the shipped bundle answers now.

Each example is computed by the code that prints it for a user: the CLI's own line formatter, the
server's own OIP response, numpy's own printing (what tritonclient's arrays show). The interpreter
is LiteRT's (the `tflite` backend, a device's default), whose answers the docs show digit for digit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime import SentimentClassifier, bundle
from runtime.predict import format_result
from runtime.serving import protocol

BACKEND = "tflite"  # the `litert` extra's interpreter, which a Raspberry Pi installs
# The texts of each example, as the command beside it in the docs spells them.
CLI_REVIEWS = ("A wonderful film with a brilliant cast.", "Dull and far too long.")
SERVER_REVIEWS = ("A wonderful film.", "Dull and far too long.")
UNREADABLE = "这部电影很好"  # "this film is very good": no word the model knows
EXPLAINED = "The plot is thin, but the acting is superb and I loved it."


@dataclass(frozen=True)
class Example:
    """One generated block: the Markdown file it is in (from the repository's root), its name, its text."""

    path: str
    block: str
    body: str


def cli_lines(classifier: SentimentClassifier, texts) -> str:
    """What `imdb-sentiment TEXT...` prints (JSON, one line a review)."""
    return "\n".join(
        format_result(index, text, classifier.classify(text), None, "json") for index, text in enumerate(texts)
    )


def oip_answer(classifier: SentimentClassifier) -> str:
    """The OIP infer answer to docs/serving.md's curl request (id "42"), an output a line, with the
    probabilities shortened to 3 digits, as the text beside it says."""
    request = protocol.InferRequest(list(SERVER_REVIEWS), protocol.OUTPUTS, "42")
    predictions = classifier.classify_batch(request.texts)
    response = protocol.infer_response(
        classifier.manifest.name, protocol.MODEL_VERSION, request, list(classifier.config.labels), predictions
    )
    outputs = response.pop("outputs")
    for output in outputs:
        if output["datatype"] == "FP32":
            output["data"] = [round(value, 3) for value in output["data"]]
    lines = [json.dumps(output, ensure_ascii=False) for output in outputs]
    head = json.dumps(response, ensure_ascii=False)[:-1]
    return f'{head}, "outputs": [\n  ' + ",\n  ".join(lines) + "]}"


def predict_answer(classifier: SentimentClassifier) -> str:
    """The /v1/predict answer to docs/serving.md's first curl request, as the server renders it."""
    predictions = classifier.classify_batch(list(SERVER_REVIEWS))
    return protocol.render(protocol.predict_response(predictions, protocol.MODEL_VERSION)).decode()


def tritonclient_output(classifier: SentimentClassifier) -> str:
    """What docs/serving.md's tritonclient script prints: readiness and labels, then the labels (bytes:
    they come as binary data) and the probabilities as the client's numpy arrays."""
    texts = list(SERVER_REVIEWS)
    labels = np.array([prediction.label.encode() for prediction in classifier.classify_batch(texts)], dtype=object)
    return f"True {list(classifier.config.labels)}\n{labels} {classifier.probabilities(texts)}"


def explained_words(classifier: SentimentClassifier) -> str:
    """What docs/explain.md's Python example prints: the label and score, then each word's line."""
    explanation = classifier.explain(EXPLAINED)
    lines = [f"{explanation.label} {round(explanation.score, 3)}"]
    lines += [f"{word.word:7} {word.probabilities['positive']:.2f} {word.effect:+.2f}" for word in explanation.words]
    return "\n".join(lines)


def examples(folder: Path = bundle.REPOSITORY_BUNDLE) -> list[Example]:
    with SentimentClassifier.from_bundle(folder, backend=BACKEND) as classifier:
        return [
            Example("docs/raspberry-pi.md", "pi-cli", f"```\n{cli_lines(classifier, CLI_REVIEWS)}\n```"),
            Example("docs/serving.md", "v1-predict", f"```json\n{predict_answer(classifier)}\n```"),
            Example("docs/serving.md", "oip-infer", f"```json\n{oip_answer(classifier)}\n```"),
            Example("docs/serving.md", "tritonclient", f"```\n{tritonclient_output(classifier)}\n```"),
            Example("docs/explain.md", "explain-words", f"```\n{explained_words(classifier)}\n```"),
            Example("README.md", "unreadable", f"```json\n{cli_lines(classifier, [UNREADABLE])}\n```"),
        ]
