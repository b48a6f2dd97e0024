"""Score a proven bundle on public benchmarks through the device runtime: `python -m export.evaluate`.

    python -m export.evaluate --model models/imdb-lstm --data ../shared/data/aclImdb_labeled.tar.gz \\
        --sst ../shared/data/sst --cad ../shared/data/cad/dev_paired.tsv \\
        --challenge datasets/negation-contrast/reviews.jsonl

Each benchmark given is classified by the runtime (the artifact a device loads, not Keras):
- IMDB test: the held-out test texts the bundle was trained against (re-created from its manifest);
- SST-2 test and dev: the treebank's sentences (the roots of test.txt and dev.txt), neutral ones
  dropped (Socher et al. 2013);
- CAD dev: the counterfactual pairs (Kaushik, Hovy & Lipton 2020); the first row of a pair is the
  IMDB original, the second its revision; a pair counts when both are right;
- the challenge set: the negation-and-contrast reviews (datasets/negation-contrast).
The figures go into the manifest's `metrics.evaluation` (one typed record, replaced whole), which
docs/training.md and the model card render. Every test file is read once a run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.validate import test_reviews
from runtime import SentimentClassifier, backends, bundle, cli
from runtime.bundle import EvaluationRecord, ScoreRecord
from training import pairs, phrases
from training.data import DataError, Split

SST_FILES = {"sst2_test": "test.txt", "sst2_dev": "dev.txt"}


@dataclass(frozen=True)
class Benchmark:
    """Labelled texts to score; `paired`: texts 2k (original) and 2k+1 (revision) are a pair."""

    name: str
    texts: list[str]
    labels: np.ndarray  # indices into the bundle's labels
    path: Path
    paired: bool = False


def read_benchmarks(
    labels: tuple[str, ...],
    imdb_test: Split | None = None,
    data_source: str | None = None,
    sst: Path | None = None,
    cad: Path | None = None,
    challenge: Path | None = None,
) -> list[Benchmark]:
    """The benchmarks given, read once each and labelled by `labels`."""
    found = []
    if imdb_test is not None:
        found.append(Benchmark("imdb_test", imdb_test.texts, imdb_test.labels, Path(data_source)))
    for name, file in SST_FILES.items() if sst else ():
        split = phrases.to_labels(phrases.read_trees(sst / file).sentences, len(labels), str(sst / file))
        found.append(Benchmark(name, split.texts, split.labels, sst / file))
    if cad:
        split = pairs.to_labels(pairs.read_pairs(cad), labels)
        found.append(Benchmark("cad_dev", split.texts, split.labels, cad, paired=True))
    if challenge:
        texts, names = read_challenge(challenge)
        unknown = sorted(set(names) - set(labels))
        if unknown:
            raise DataError(f"{challenge}: labels {unknown} are not the bundle's {list(labels)}")
        found.append(Benchmark("challenge", texts, np.array([labels.index(n) for n in names]), challenge))
    return found


def read_challenge(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
                texts.append(item["text"])
                labels.append(item["label"])
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}, line {number}: not a JSON object with text and label") from None
    return texts, labels


def score_benchmarks(predict: Callable[[list[str]], np.ndarray], benchmarks: list[Benchmark]) -> dict:
    """Each benchmark's ScoreRecord (CAD's three: originals, revisions, pairs both right) under
    `predict`, which gives the label index of each text of all the benchmarks at once."""
    answers = np.asarray(predict([text for benchmark in benchmarks for text in benchmark.texts]))
    scores, start = {}, 0
    for benchmark in benchmarks:
        right = answers[start : start + len(benchmark.texts)] == benchmark.labels
        start += len(benchmark.texts)
        if benchmark.paired:
            scores[f"{benchmark.name}_originals"] = _record(right[0::2], benchmark.path)
            scores[f"{benchmark.name}_revisions"] = _record(right[1::2], benchmark.path)
            scores[f"{benchmark.name}_pairs"] = _record(right[0::2] & right[1::2], benchmark.path)
        else:
            scores[benchmark.name] = _record(right, benchmark.path)
    return scores


def _record(right: np.ndarray, path: Path) -> ScoreRecord:
    return ScoreRecord(
        texts=int(right.size),
        accuracy=round(float(right.mean()), 6),
        source=path.name,
        sha256=bundle.sha256_file(path) if path.is_file() else None,
    )


def evaluate_bundle(
    folder: Path,
    data_source: str | None = None,
    sst: Path | None = None,
    cad: Path | None = None,
    challenge: Path | None = None,
    backend: str = "onnx",
    precision: str = "float32",
) -> EvaluationRecord:
    """The benchmarks given, scored through the runtime on `backend` and `precision`."""
    with SentimentClassifier.from_bundle(folder, backend=backend, precision=precision) as classifier:
        labels = classifier.config.labels
        imdb_test = test_reviews(data_source, None, bundle.Manifest.read(folder)) if data_source else None
        benchmarks = read_benchmarks(labels, imdb_test, data_source, sst, cad, challenge)

        def predict(texts: list[str]) -> np.ndarray:
            return np.array([labels.index(p.label) for p in classifier.classify_batch(texts)])

        scores = score_benchmarks(predict, benchmarks)
    return EvaluationRecord(
        backend=backend,
        precision=precision,
        measured=datetime.date.today().isoformat(),
        machine=f"{platform.machine()}, {os.cpu_count()} cores",
        **scores,
    )


def write_evaluation(folder: Path, evaluation: EvaluationRecord) -> bundle.Manifest:
    """Replace the manifest's `metrics.evaluation` with `evaluation`."""
    manifest = bundle.Manifest.read(folder)
    metrics = manifest.metrics or bundle.MetricsRecord()
    # A record read from a file writes back the keys it was read with: name the new one too.
    order = metrics.order + (("evaluation",) if metrics.order and "evaluation" not in metrics.order else ())
    metrics = dataclasses.replace(metrics, evaluation=evaluation, order=order)
    manifest = dataclasses.replace(manifest, metrics=metrics)
    bundle.write_manifest(folder, manifest)
    return manifest


def format_evaluation(evaluation: EvaluationRecord) -> str:
    lines = [f"| benchmark | texts | accuracy ({evaluation.backend}, {evaluation.precision}) |", "|---|---|---|"]
    for name in EvaluationRecord.NESTED:
        scored = getattr(evaluation, name)
        if scored is not None:
            lines.append(f"| {name} | {scored.texts:,} | {100 * scored.accuracy:.2f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("export.evaluate", __doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=bundle.REPOSITORY_BUNDLE, help="the bundle folder")
    parser.add_argument("--data", help="the data the bundle was trained on, for its test texts (IMDB's archive)")
    parser.add_argument("--sst", type=Path, help="a folder with the treebank's test.txt and dev.txt")
    parser.add_argument("--cad", type=Path, help="counterfactual pairs to score (CAD's dev_paired.tsv)")
    parser.add_argument("--challenge", type=Path, help="a JSON-lines file of {text, label} reviews")
    parser.add_argument("--backend", default="onnx", choices=backends.BACKENDS, help="the interpreter")
    parser.add_argument("--precision", default="float32", choices=bundle.PRECISIONS, help="the artifacts' precision")
    parser.add_argument("--no-write", action="store_true", help="print the figures; leave the manifest as it is")
    args = parser.parse_args(argv)
    if not (args.data or args.sst or args.cad or args.challenge):
        parser.error("give at least one benchmark: --data, --sst, --cad or --challenge")
    try:
        evaluation = evaluate_bundle(
            args.model, args.data, args.sst, args.cad, args.challenge, args.backend, args.precision
        )
        if not args.no_write:
            write_evaluation(args.model, evaluation)
    except (DataError, bundle.BundleError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_evaluation(evaluation))
    if not args.no_write:
        print(f"written to {args.model / bundle.MANIFEST_NAME} (metrics.evaluation)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
