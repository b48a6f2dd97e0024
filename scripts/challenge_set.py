"""The negation-and-contrast challenge set: does the model read "not", "but", "yet" and "despite"?

    python scripts/challenge_set.py --model models/imdb-lstm [--backend onnx|tflite] [--precision float32]
    python scripts/challenge_set.py --model models/imdb-lstm --backend onnx --record datasets/negation-contrast/results.jsonl
    python scripts/challenge_set.py --stats

Classifies every review of datasets/negation-contrast/reviews.jsonl through the device runtime and
prints the accuracy overall, per category and per label. `--record FILE` appends one JSON line
(bundle, manifest sha256, backend, precision, accuracies, date, machine) for the docs to cite.
`--stats` needs no model: it prints the set's counts per category and label as a markdown table
and writes them into the set's README between `<!-- begin:counts -->` and `<!-- end:counts -->`,
and the runs of record of results.jsonl between `<!-- begin:results -->` and `<!-- end:results -->`.

The set is never trained on and never used to choose settings; it is read for the results table only.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.challenge_reviews import (  # noqa: E402
    CATEGORIES,
    DATASET,
    LABELS,
    REVIEWS,
    ChallengeSetError,
    Review,
    load_reviews,
)
from benchmarks.sections import cpu_name  # noqa: E402

README = DATASET / "README.md"
RESULTS = DATASET / "results.jsonl"

COUNTS_BLOCK = "counts"
RESULTS_BLOCK = "results"
# Words that carry sentiment on their own; --stats counts the reviews of each label holding them,
# to show that a word alone does not give the answer.
LEXICON = (
    "brilliant",
    "wonderful",
    "great",
    "good",
    "beautiful",
    "love",
    "loved",
    "enjoyed",
    "best",
    "funny",
    "boring",
    "bored",
    "dull",
    "awful",
    "terrible",
    "bad",
    "mess",
    "cheap",
)


def counts(reviews: Iterable[Review]) -> dict[str, dict[str, int]]:
    """The number of reviews of each label in each category that occurs, in CATEGORIES order."""
    found = collections.Counter((review.category, review.label) for review in reviews)
    return {
        category: {label: found[category, label] for label in LABELS}
        for category in CATEGORIES
        if any(found[category, label] for label in LABELS)
    }


def counts_table(reviews: Sequence[Review]) -> str:
    """The counts per category and label as a markdown table, with a total row."""
    table = counts(reviews)
    rows = ["| Category | " + " | ".join(LABELS) + " | Total |", "|---|" + "---:|" * (len(LABELS) + 1)]
    for category, by_label in table.items():
        rows.append(
            f"| {category} | " + " | ".join(str(by_label[label]) for label in LABELS) + f" | {sum(by_label.values())} |"
        )
    totals = [sum(by_label[label] for by_label in table.values()) for label in LABELS]
    rows.append("| **all** | " + " | ".join(f"**{total}**" for total in totals) + f" | **{sum(totals)}** |")
    return "\n".join(rows)


def lexicon_table(reviews: Sequence[Review], words: Sequence[str] = LEXICON) -> str:
    """How many reviews of each label contain each sentiment word, as a markdown table."""
    from runtime.text import split_words

    found = collections.Counter((word, review.label) for review in reviews for word in set(split_words(review.text)))
    header = "| Word | " + " | ".join(f"in {label} reviews" for label in LABELS) + " |"
    rows = [header, "|---|" + "---:|" * len(LABELS)]
    rows += [f"| {word} | " + " | ".join(str(found[word, label]) for label in LABELS) + " |" for word in words]
    return "\n".join(rows)


def replace_block(document: str, name: str, content: str) -> str:
    """`document` with the text between `<!-- begin:NAME -->` and `<!-- end:NAME -->` replaced."""
    pattern = re.compile(rf"(<!-- begin:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- end:{re.escape(name)} -->)", re.S)
    if not pattern.search(document):
        raise ChallengeSetError(f"no <!-- begin:{name} --> ... <!-- end:{name} --> block")
    return pattern.sub(lambda match: match.group(1) + content.rstrip("\n") + "\n" + match.group(2), document, count=1)


def stats_block(reviews: Sequence[Review]) -> str:
    return (
        counts_table(reviews) + "\n\nReviews of each label that contain a sentiment word (a word alone does "
        "not give the answer):\n\n" + lexicon_table(reviews)
    )


def load_records(path: str | Path = RESULTS) -> list[dict]:
    """The runs of record of a results file (none if there is no file)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def results_table(records: Sequence[dict]) -> str:
    """The runs of record as a markdown table: accuracy overall and per category, in %."""
    if not records:
        return (
            "No run of record yet: `python scripts/challenge_set.py --model FOLDER --record " + _shown(RESULTS) + "`."
        )
    header = ["Date", "Bundle (manifest sha256)", "Artifact", "All"] + list(CATEGORIES)
    rows = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    for run in records:
        cells = [
            run["date"][:10],
            f"{run['bundle']} (`{run['manifest_sha256'][:12]}`)",
            f"{run['backend']} {run['precision']}",
            f"**{run['accuracy'] * 100:.1f}**",
        ]
        cells += [
            f"{run['per_category'][category] * 100:.1f}" if category in run["per_category"] else "-"
            for category in CATEGORIES
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def update_readme(readme: str | Path, reviews: Sequence[Review], records: Sequence[dict] | None = None) -> bool:
    """Write the counts (and, if the README has a results block, the runs of record) into the
    README; True if the file changed."""
    readme = Path(readme)
    before = readme.read_text(encoding="utf-8")
    after = replace_block(before, COUNTS_BLOCK, stats_block(reviews))
    if records is not None and f"<!-- begin:{RESULTS_BLOCK} -->" in after:
        after = replace_block(after, RESULTS_BLOCK, results_table(records))
    if after != before:
        readme.write_text(after, encoding="utf-8")
    return after != before


@dataclass
class Evaluation:
    """A classifier's answers on a challenge set: `accuracy` overall, and per category and label
    (each a fraction in [0, 1]); `counts` holds (correct, total) for every group."""

    total: int
    correct: int
    per_category: dict[str, float]
    per_label: dict[str, float]
    counts: dict[str, tuple[int, int]] = field(repr=False)
    mistakes: list[tuple[Review, str]] = field(repr=False)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total

    def to_dict(self) -> dict:
        return {
            "reviews": self.total,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "per_category": {name: round(value, 4) for name, value in self.per_category.items()},
            "per_label": {name: round(value, 4) for name, value in self.per_label.items()},
        }


def accuracy_of(classifier, reviews: Sequence[Review]) -> Evaluation:
    """Classify every review with anything that has `classify(text) -> object with .label`
    (a runtime.SentimentClassifier, say) and score the answers."""
    if not reviews:
        raise ValueError("no reviews to evaluate")
    tally: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    mistakes = []
    for review in reviews:
        predicted = classifier.classify(review.text).label
        right = predicted == review.label
        for group in ("all", f"category:{review.category}", f"label:{review.label}"):
            tally[group][0] += right
            tally[group][1] += 1
        if not right:
            mistakes.append((review, predicted))
    fraction = {group: correct / total for group, (correct, total) in tally.items()}
    return Evaluation(
        total=tally["all"][1],
        correct=tally["all"][0],
        per_category={
            category: fraction[f"category:{category}"] for category in CATEGORIES if f"category:{category}" in tally
        },
        per_label={label: fraction[f"label:{label}"] for label in LABELS if f"label:{label}" in tally},
        counts={group: tuple(values) for group, values in tally.items()},
        mistakes=mistakes,
    )


def report(evaluation: Evaluation) -> str:
    """The accuracies as plain text, one line a group."""

    def line(name: str, group: str) -> str:
        correct, total = evaluation.counts[group]
        return f"  {name:<22} {correct / total * 100:6.2f} %  ({correct}/{total})"

    lines = [f"Accuracy {evaluation.accuracy * 100:.2f} % ({evaluation.correct}/{evaluation.total})", "Per category:"]
    lines += [line(category, f"category:{category}") for category in evaluation.per_category]
    lines += ["Per label:"] + [line(label, f"label:{label}") for label in evaluation.per_label]
    return "\n".join(lines)


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def machine() -> dict:
    cpu = cpu_name()
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
    }


def source_state() -> dict:
    """The repository's commit and whether the runtime had uncommitted changes, where git can say."""
    try:

        def git(*arguments: str) -> str:
            return subprocess.run(
                ["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()

        return {
            "commit": git("rev-parse", "HEAD"),
            "runtime_modified": bool(git("status", "--porcelain", "--", "runtime")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def record_of(classifier, evaluation: Evaluation, reviews_path: str | Path) -> dict:
    """One run of record: which bundle and artifact, on which set, with what accuracy, where and when."""
    from runtime import bundle

    folder = Path(classifier.folder)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bundle": classifier.manifest.name,
        "created": classifier.manifest.created,
        "folder": _shown(folder),
        "manifest_sha256": sha256_of(folder / bundle.MANIFEST_NAME),
        "backend": classifier.backend,
        "precision": classifier.precision,
        "graph": classifier.graph,
        "reviews_file": _shown(Path(reviews_path)),
        "reviews_sha256": sha256_of(reviews_path),
        **evaluation.to_dict(),
        "machine": machine(),
        **source_state(),
    }


def append_record(path: str | Path, record: dict) -> None:
    """Append the record to a JSON-lines file as one compact line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as records:
        records.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")


def _shown(path: Path) -> str:
    """A path relative to the repository where it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def evaluate_bundle(
    folder: str | Path,
    reviews: Sequence[Review],
    backend: str = "auto",
    precision: str = "float32",
    threads: int | None = 1,
):
    """Load a bundle through the device runtime and score it: (the evaluation, the classifier,
    closed, whose folder, manifest, backend, precision and graph say what was scored)."""
    from runtime import SentimentClassifier

    with SentimentClassifier.from_bundle(
        folder=folder, backend=backend, precision=precision, threads=threads
    ) as classifier:
        evaluation = accuracy_of(classifier, reviews)
        return evaluation, classifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a bundle folder, e.g. models/imdb-lstm")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnx", "tflite"))
    parser.add_argument("--precision", default="float32", choices=("float32", "int8"))
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--reviews", default=str(REVIEWS), help="the challenge set (default: %(default)s)")
    parser.add_argument("--record", metavar="FILE", help=f"append the run as one JSON line, e.g. {_shown(RESULTS)}")
    parser.add_argument("--mistakes", action="store_true", help="also list the misclassified reviews")
    parser.add_argument(
        "--stats", action="store_true", help="no model: print the counts and write them into the set's README"
    )
    parser.add_argument("--readme", default=str(README), help=argparse.SUPPRESS)
    parser.add_argument("--results", default=str(RESULTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        reviews = load_reviews(args.reviews)
    except (OSError, ChallengeSetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.stats:
        records = load_records(args.results)
        print(stats_block(reviews) + "\n\nRuns of record:\n\n" + results_table(records))
        if Path(args.readme).is_file():
            try:
                changed = update_readme(args.readme, reviews, records)
            except ChallengeSetError as error:
                print(f"error: {args.readme}: {error}", file=sys.stderr)
                return 1
            print(f"\n{args.readme}: {'updated' if changed else 'already up to date'}", file=sys.stderr)
        return 0
    if not args.model:
        parser.error("--model FOLDER is required (or --stats)")
    from runtime import backends, bundle

    try:
        evaluation, classifier = evaluate_bundle(args.model, reviews, args.backend, args.precision, args.threads)
    except (bundle.BundleError, backends.BackendError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"{classifier.manifest.name} ({args.model}), {classifier.backend} {classifier.precision} "
        f"{classifier.graph}, on {_shown(Path(args.reviews))}"
    )
    print(report(evaluation))
    if args.mistakes:
        print("Misclassified:")
        for review, predicted in evaluation.mistakes:
            print(f"  #{review.id} [{review.category}] {review.label}, read as {predicted}: {review.text}")
    if args.record:
        append_record(args.record, record_of(classifier, evaluation, args.reviews))
        print(f"recorded in {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
