"""The negation-and-contrast challenge set is well formed, and the script scores the shipped bundle
through the runtime (its accuracy is reported, never asserted: the set is not a target)."""

import collections
import json

import pytest

from runtime import backends
from scripts import challenge_set
from scripts.challenge_set import CATEGORIES, LABELS, ChallengeSetError, accuracy_of, load_reviews
from tests.conftest import SHIPPED_BUNDLE


@pytest.fixture(scope="module")
def reviews():
    return load_reviews(challenge_set.REVIEWS)


def test_the_set_loads_and_is_large_enough(reviews):
    assert len(reviews) >= 200


def test_the_labels_are_exactly_balanced(reviews):
    by_label = collections.Counter(review.label for review in reviews)
    assert set(by_label) == set(LABELS)
    assert by_label["negative"] == by_label["positive"] == len(reviews) // 2


def test_every_category_has_both_labels(reviews):
    found = collections.Counter((review.category, review.label) for review in reviews)
    for category in CATEGORIES:
        for label in LABELS:
            assert found[category, label] > 0, (category, label)


def test_no_text_or_id_repeats(reviews):
    assert len({" ".join(review.text.casefold().split()) for review in reviews}) == len(reviews)
    assert len({review.id for review in reviews}) == len(reviews)


def test_the_readme_counts_and_results_are_the_scripts(reviews):
    readme = challenge_set.README.read_text(encoding="utf-8")
    current = challenge_set.replace_block(readme, challenge_set.COUNTS_BLOCK, challenge_set.stats_block(reviews))
    current = challenge_set.replace_block(
        current, challenge_set.RESULTS_BLOCK, challenge_set.results_table(challenge_set.load_records())
    )
    assert current == readme, "the README's counts or results are stale: run python scripts/challenge_set.py --stats"


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


GOOD = {"id": 1, "text": "Not bad at all.", "label": "positive", "category": "negated-criticism"}


@pytest.mark.parametrize(
    "second, problem",
    [
        ({**GOOD, "text": "Never boring."}, "id 1 is also on line 1"),
        ({**GOOD, "id": 2, "text": "  not BAD at   all."}, "the same text as line 1"),
        ({**GOOD, "id": 2, "text": "Dull.", "label": "neutral"}, "label 'neutral'"),
        ({**GOOD, "id": 2, "text": "   "}, "the text is empty"),
        ({**GOOD, "id": 2, "text": "Dull.", "category": "sarcasm"}, "category 'sarcasm'"),
        ({**GOOD, "id": "2", "text": "Dull."}, "is not an integer"),
        ({"id": 2, "text": "Dull.", "label": "negative"}, "exactly the fields"),
    ],
)
def test_load_reviews_refuses_a_bad_file(tmp_path, second, problem):
    path = write(tmp_path / "reviews.jsonl", [GOOD, second])
    with pytest.raises(ChallengeSetError, match=f"reviews.jsonl:2: .*{problem}"):
        load_reviews(path)


class Fixed:
    """A classifier that answers one label for everything."""

    def __init__(self, label):
        self.label = label

    def classify(self, text):
        return self


def test_accuracy_of_scores_per_category_and_label(reviews):
    evaluation = accuracy_of(Fixed("positive"), reviews)
    assert evaluation.accuracy == 0.5
    assert evaluation.per_label == {"negative": 0.0, "positive": 1.0}
    assert set(evaluation.per_category) == set(CATEGORIES)
    assert len(evaluation.mistakes) == len(reviews) // 2


def test_stats_updates_only_the_counts_and_results_blocks(tmp_path, capsys):
    readme, results = tmp_path / "README.md", tmp_path / "results.jsonl"
    readme.write_text(
        "intro\n<!-- begin:counts -->\nold\n<!-- end:counts -->\nmiddle\n"
        "<!-- begin:results -->\n<!-- end:results -->\noutro\n",
        encoding="utf-8",
    )
    challenge_set.append_record(
        results,
        {
            "date": "2026-12-02T00:00:00+00:00",
            "bundle": "b",
            "manifest_sha256": "ab" * 32,
            "backend": "onnx",
            "precision": "float32",
            "accuracy": 0.5,
            "per_category": {"concession": 0.25},
        },
    )
    assert challenge_set.main(["--stats", "--readme", str(readme), "--results", str(results)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n<!-- begin:counts -->\n| Category |") and text.endswith(
        "<!-- end:results -->\noutro\n"
    )
    assert "old" not in text and "<!-- end:counts -->\nmiddle\n<!-- begin:results -->\n| Date |" in text
    assert "| 2026-12-02 | b (`abababababab`) | onnx float32 | **50.0** | - | - | - | 25.0 |" in text
    assert "| **all** |" in capsys.readouterr().out


def test_the_script_scores_the_shipped_bundle_through_the_runtime(tmp_path, capsys):
    available = backends.available_backends()
    if not available:
        pytest.skip("no interpreter installed")
    backend = "onnx" if "onnx" in available else "tflite"
    record = tmp_path / "results.jsonl"
    assert (
        challenge_set.main(
            ["--model", str(SHIPPED_BUNDLE), "--backend", backend, "--precision", "float32", "--record", str(record)]
        )
        == 0
    )
    assert "Per category:" in capsys.readouterr().out
    [line] = record.read_text(encoding="utf-8").splitlines()
    run = json.loads(line)
    assert 0.0 <= run["accuracy"] <= 1.0
    assert set(run["per_category"]) == set(CATEGORIES)
    assert all(0.0 <= value <= 1.0 for value in run["per_category"].values())
    assert run["bundle"] == "imdb-lstm" and run["backend"] == backend and run["precision"] == "float32"
    assert len(run["manifest_sha256"]) == 64 and run["reviews"] >= 200
