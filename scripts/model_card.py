"""Write a bundle's MODEL_CARD.md from its manifest, in the shape of the Hugging Face model cards.

    python scripts/model_card.py [BUNDLE]        # default: models/imdb-lstm

Every figure comes from the manifest (training, metrics, parity) or is measured here: the
out-of-scope examples are classified by the runtime as the card is written. The card is then
recorded in the manifest's reports with its sha256, like the plots (scripts/update_readme.py
calls this for the shipped bundle).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from export import step_parity  # noqa: E402
from export.parity import format_table  # noqa: E402
from runtime import SentimentClassifier, bundle  # noqa: E402
from scripts import challenge_set  # noqa: E402
from training import model_card  # noqa: E402

CARD_NAME = "MODEL_CARD.md"
FILLER_SENTENCE = "The film was released in the spring and runs for about two hours. "
# Texts outside the model's intended use, and what each shows; the card gives the model's answers.
PROBES = [
    (
        "A wonderful film with a brilliant cast. I was moved from the first scene to the last.",
        "an English movie review: the intended use",
    ),
    (
        "Oh great, another two hours of my life I will never get back. Truly a masterpiece of boredom.",
        "sarcasm: the words are positive, the meaning is not",
    ),
    ("Not bad at all. I was not disappointed.", "negation of negative words"),
    ("The battery died after two days and the seller never answered my emails.", "a product review: another domain"),
    ("Fast delivery, the headphones sound great and fit well.", "a product review: another domain"),
    (
        "Une histoire magnifique, des acteurs excellents et une fin bouleversante.",
        "French: almost every word is outside the vocabulary",
    ),
    (FILLER_SENTENCE * 45, "a long text of plain facts"),
    (
        "This is the worst film I have ever seen. " + FILLER_SENTENCE * 45,
        "the same text after a damning first sentence, which falls outside the last 500 tokens read",
    ),
]


def probe_rows(folder: Path) -> tuple[list[str], str]:
    with SentimentClassifier.from_bundle(folder) as classifier:
        rows = []
        for text, what in PROBES:
            prediction = classifier.classify(text)
            tokens = len(classifier.tokenizer.token_ids(text)) - 1
            shown = text if len(text) < 110 else text[:100] + f"... ({len(text.split())} words)"
            rows.append(f"| {shown} | {what} | {prediction.label} {prediction.score:.2f} | {tokens} |")
        return rows, classifier.describe()["backend"]


BENCHMARK_NAMES = {
    "imdb_test": "IMDB test",
    "sst2_test": "SST-2 test (sentences)",
    "sst2_dev": "SST-2 dev",
    "cad_dev_originals": "CAD dev, originals",
    "cad_dev_revisions": "CAD dev, revisions",
    "cad_dev_pairs": "CAD dev, both of a pair",
    "challenge": "negation-and-contrast set",
}


def supervision_lines(manifest: bundle.Manifest) -> str:
    """The extra supervision training read (training.supervision), one line a file, with its citation."""
    supervision = manifest.training.supervision if manifest.training else None
    if supervision is None:
        return ""
    uses = {
        "phrases": "phrases trained on",
        "pairs": "counterfactual pairs trained on",
        "phrases_validation": "phrases validated on (choosing the epoch)",
        "pairs_validation": "pairs validated on (choosing the epoch)",
    }
    lines = [
        f"- {use}: `{record.source}`, {record.texts:,} texts"
        + (f" ({record.dropped:,} left out: texts IMDB holds out)" if record.dropped else "")
        + f"; {record.citation}"
        for name, use in uses.items()
        if (record := getattr(supervision, name)) is not None
    ]
    return "\nExtra supervision, mixed into every epoch (docs/training.md):\n\n" + "\n".join(lines) + "\n"


def benchmark_lines(manifest: bundle.Manifest) -> str:
    """The bundle's scores through the device runtime on each public benchmark (export.evaluate)."""
    evaluation = manifest.metrics.evaluation if manifest.metrics else None
    if evaluation is None:
        return ""
    rows = [
        f"| {title} | {score.texts:,} | {100 * score.accuracy:.2f} % |"
        for name, title in BENCHMARK_NAMES.items()
        if (score := getattr(evaluation, name)) is not None
    ]
    return (
        f"\nThe bundle through the device runtime on public benchmarks (`python -m export.evaluate`, "
        f"{evaluation.backend} {evaluation.precision}, {evaluation.measured}):\n\n"
        "| benchmark | texts | accuracy |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def classify_parity(manifest: bundle.Manifest) -> dict[str, bundle.ParityRecord]:
    """The parity records of the graphs that classify (export.parity.format_table reads their
    `figures` and `passed`, as it reads a fresh export.validate.ArtifactResult)."""
    return {
        key: result for key, result in (manifest.parity or {}).items() if manifest.artifacts[key].graph in bundle.GRAPHS
    }


def steps_parity(manifest: bundle.Manifest) -> dict[str, bundle.ParityRecord]:
    return {
        key: result
        for key, result in (manifest.parity or {}).items()
        if manifest.artifacts[key].graph == bundle.STEPS_GRAPH
    }


def challenge_sentence(manifest: bundle.Manifest) -> str:
    """This model's reading of the negation-and-contrast set, and the one shipped before it, from the
    runs of record (scripts/challenge_set.py --record)."""
    records = [
        record for record in challenge_set.load_records() if record["bundle"] == manifest.name and "created" in record
    ]
    this = [record for record in records if record["created"] == manifest.created]
    before = [record for record in records if record["created"] < manifest.created]
    if not this:
        return "Not yet read for this model (`python scripts/challenge_set.py --model ... --record ...`)."
    now = this[-1]
    sentence = (
        f"**{now['accuracy'] * 100:.2f} %** of {now['reviews']} reviews ({now['backend']}, {now['precision']}, "
        f"read {now['date'][:10]}); by category: "
        + ", ".join(f"{name} {value * 100:.0f} %" for name, value in now["per_category"].items())
        + "."
    )
    if before:
        sentence += f" The model shipped before this one: {before[-1]['accuracy'] * 100:.2f} %."
    return sentence


def render(folder: Path, manifest: bundle.Manifest) -> str:
    config, metrics, training = manifest.model_config, manifest.metrics, manifest.training
    data, settings = training.data, training.settings
    labels = ", ".join(config.labels)
    rows, backend = probe_rows(folder)
    artifacts = [key for key, record in manifest.artifacts.items() if record.kind is not None]
    return f"""---
language: en
library_name: keras
pipeline_tag: text-classification
tags: [sentiment-analysis, lstm, tflite, onnx, edge]
datasets: [imdb]
metrics: [accuracy]
---

# {manifest.name}: IMDB sentiment LSTM for CPU-only devices

*Generated by `python scripts/model_card.py` from `manifest.json` (bundle created {manifest.created}).*

## Model details

- **Architecture:** Embedding({config.vocab_size:,} ids, {config.embedding_dim}) → LSTM({config.lstm_units},
  dropout {config.dropout}, recurrent dropout {config.recurrent_dropout}) → Dense({len(config.labels)}, softmax).
  Labels: {labels}. Reviews are read as word ids, padded or cut to their last {config.sequence_length} tokens.
- **Tokenizer:** `runtime/text.py`: HTML removed, NFKC, case folded, words of letters and digits with inner
  apostrophes; the {manifest.tokenizer.words:,} most frequent training words, the rest out of vocabulary.
- **Artifacts:** {len(artifacts)} exported graphs ({", ".join(artifacts)}), run by LiteRT, tflite-runtime or
  ONNX Runtime without TensorFlow. "cached" graphs start from the stored state after the padding and read only a
  review's own tokens; int8 is dynamic-range quantisation.
- **Trained with:** TensorFlow {training.library_versions["tensorflow"]}, Keras {training.library_versions["keras"]},
  on {training.machine}, {metrics.training_seconds / 60:.0f} minutes.

## Intended use

Telling whether an English movie review, as a viewer writes it, is negative or positive, on a device
without a GPU (such as a Raspberry Pi), in a few milliseconds or less. It suits sorting or counting reviews, not
decisions about people.

## Out-of-scope use

The model has seen only English IMDB reviews that are clearly negative (1–4 stars) or positive
(7–10 stars). It always answers one of its two labels, with a probability that is not calibrated for
other text. How it answers outside that scope, measured as this card was written ({backend} backend,
float32, cached graph):

| text | what it probes | answer | tokens |
|---|---|---|---|
{chr(10).join(rows)}

Reviews of middling films, other languages, other domains (products, news, social media), sarcasm and
irony, and reviews longer than {config.sequence_length} tokens (only the last {config.sequence_length}
are read) are outside what it was trained and tested on.

## Training data

The [Large Movie Review Dataset](https://ai.stanford.edu/~amaas/data/sentiment/) (Maas et al., 2011),
`{data.source}` (sha256 `{data.sha256[:16]}…`): {data.fit_reviews:,} training reviews fitted,
{data.validation_reviews:,} held out for choosing the epoch (whole blocks of {data.validation_block_ids or "?"}
consecutive review ids, so that validation films are mostly unseen), and {data.test_reviews:,} test
reviews from films the training set does not contain, used once for the figures below. Settings:
{", ".join(f"{key} {value}" for key, value in settings.items() if value not in (None, False))}.
{supervision_lines(manifest)}
## Evaluation

Test accuracy of the trained Keras model: **{metrics.test_accuracy * 100:.2f} %** on {data.test_reviews:,}
reviews (loss {metrics.test_loss:.4f}); validation accuracy {metrics.validation_accuracy * 100:.2f} % at
epoch {metrics.best_epoch} of {metrics.epochs_run}. Each exported artifact against the Keras model on real
test reviews (`python -m export.parity`):

{format_table(classify_parity(manifest), manifest.artifacts)}
{benchmark_lines(manifest)}
Short reviews that turn on negation or contrast ("Not bad at all.", "Well acted, and completely boring."):
the [challenge set](../../datasets/negation-contrast/README.md), written for this project and never trained on
or used to choose settings. {challenge_sentence(manifest)}

The per-step artifacts (`explain`: the opinion after every word) at every step of the same reviews:

{step_parity.format_table(steps_parity(manifest), manifest.artifacts)}

## Limitations and biases

- A word model of {manifest.tokenizer.words:,} words: new words, names, misspellings and emoji are
  unknown to it, and its view of a word is whatever IMDB reviewers up to 2011 meant by it.
- It learned from reviews that are clearly for or against a film; mixed reviews are forced into one label.
- Its opinions of words reflect the reviews it read: names of actors, directors, countries or groups that
  appear mostly in praised or panned films can sway an answer. This has not been measured.
- Only the last {config.sequence_length} tokens count: a long review is judged by its ending.

## How to reproduce

```sh
python -m training.fit --data aclImdb_v1.tar.gz --output models/imdb-lstm --overwrite
python -m export.tflite --model models/imdb-lstm --data aclImdb_v1.tar.gz
python -m export.onnx --model models/imdb-lstm --data aclImdb_v1.tar.gz
python -m export.parity --model models/imdb-lstm --data aclImdb_v1.tar.gz
```

The manifest records every setting, the data's sha256 and the library versions of the run.
"""


def write(folder: Path = bundle.REPOSITORY_BUNDLE) -> Path:
    """Write the card into the bundle and record it in the manifest's reports."""
    folder = Path(folder)
    if bundle.Manifest.read(folder).training.data.format != "imdb":  # own data: no IMDB probes or challenge set
        model_card.write_card(folder, bundle.Manifest.read(folder))
        return folder / CARD_NAME
    path = folder / CARD_NAME
    with bundle.atomic_path(path) as temporary:
        temporary.write_text(render(folder, bundle.Manifest.read(folder)), encoding="utf-8")
    manifest = bundle.Manifest.read(folder)  # read again: rendering takes a while
    reports = [record for record in manifest.reports or () if record.file != CARD_NAME]
    bundle.write_manifest(folder, dataclasses.replace(manifest, reports=(*reports, bundle.FileRecord.of(path))))
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else bundle.REPOSITORY_BUNDLE))
