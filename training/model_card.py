"""The model card every bundle training.fit writes (MODEL_CARD.md), fitted to the data it was
trained on as its manifest records it: the labels, the data's file, format and split, the test
figures. No TensorFlow, no device artifact: it is written before export.

The shipped IMDB bundle's fuller card (the probes, parity and the challenge set, all read from
the exported artifacts) is scripts/model_card.py's, which overwrites this one after export.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runtime import bundle

CARD_NAME = "MODEL_CARD.md"
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
IMDB_DATA = (
    "the Large Movie Review Dataset (IMDB, Maas et al. 2011): English movie reviews, 1–4 stars negative, 7–10 positive"
)


def describe_data(data: bundle.DataRecord) -> str:
    """Where the texts came from and how they were split, in one paragraph."""
    if data.format == "imdb":
        source = IMDB_DATA
    else:
        source = f"`{data.source}` ({data.format}, sha256 `{data.sha256}`), data of the bundle's owner"
    split = "its own test split" if data.test_split is None else f"{data.test_split:.0%} of it held out as test"
    counts = f"{data.fit_reviews or 0:,} texts to fit, {data.validation_reviews or 0:,} to validate, {data.test_reviews or 0:,} to test"
    return f"Trained on {source}; {split}: {counts}."


def describe_metrics(metrics: bundle.MetricsRecord | None) -> str:
    if metrics is None or metrics.test_accuracy is None:
        return "No test figures were recorded."
    f1 = "" if metrics.test_macro_f1 is None else f", macro F1 {metrics.test_macro_f1:.3f}"
    return f"Test accuracy {metrics.test_accuracy:.2%}{f1} (the test split above)."


def render(manifest: bundle.Manifest) -> str:
    """The card's text, from the manifest alone."""
    config, data = manifest.model_config, manifest.training.data
    labels = list(config.labels)
    count = NUMBERS.get(len(labels), str(len(labels)))
    imdb = data.format == "imdb"
    front = "datasets: [imdb]\nlanguage: en\n" if imdb else ""
    title = "IMDB sentiment LSTM" if imdb else "text classifier LSTM"
    layers = f"{config.layers} LSTM layer(s) of {config.lstm_units} units" + ", bidirectional" * config.bidirectional
    return f"""---
{front}library_name: keras
pipeline_tag: text-classification
tags: [lstm, tflite, onnx, edge]
---

# {manifest.name}: {title} for CPU-only devices

## What it does

It reads a text and answers one of its {count} labels: {", ".join(labels)}, with a probability for
each. It always answers one of them, even for a text unlike its training data, and its
probabilities are not calibrated.

## Data

{describe_data(data)}

## Results

{describe_metrics(manifest.metrics)}

## Limits

It knows the {config.vocab_size:,} most frequent words of its training texts and reads at most the
last {config.sequence_length} tokens of a text; any other word is unknown to it. Use it only on
texts like its training data.

## Model

Embedding ({config.embedding_dim}) → {layers}{", attention" * config.attention} → Dense softmax over
the labels. The manifest records every setting, the data's sha256 and the library versions.
"""


def write_card(folder: Path, manifest: bundle.Manifest) -> bundle.Manifest:
    """Write the card into the bundle folder and record it in the manifest's reports; the new manifest."""
    path = Path(folder) / CARD_NAME
    with bundle.atomic_path(path) as temporary:
        temporary.write_text(render(manifest), encoding="utf-8")
    reports = [record for record in manifest.reports or () if record.file != CARD_NAME]
    manifest = dataclasses.replace(manifest, reports=(*reports, bundle.FileRecord.of(path)))
    bundle.write_manifest(folder, manifest)
    return manifest
