"""The negation-and-contrast challenge set's reviews (datasets/negation-contrast/reviews.jsonl),
read and checked: what scripts/challenge_set.py classifies and a run's row scores (benchmarks.runs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATASET = Path(__file__).resolve().parent.parent / "datasets" / "negation-contrast"
REVIEWS = DATASET / "reviews.jsonl"
LABELS = ("negative", "positive")
CATEGORIES = (
    "negated-praise",  # "not good", "I did not enjoy it at all"
    "negated-criticism",  # "not bad at all", "never boring"
    "but-contrast",  # "X, but Y", either way round: the part after "but" decides
    "concession",  # "although the plot is thin, ..."
    "double-negation",  # "I can't say I didn't like it"
    "understatement",  # "not the worst way to spend an evening", where the label is clear
    "rhetorical-question",  # "Boring? Not for a second."
    "connective-contrast",  # "yet", "however", "despite", "still", "nevertheless", "even so"
)
FIELDS = ("id", "text", "label", "category")


class ChallengeSetError(ValueError):
    """The reviews file is not a valid challenge set; the message names the file and line."""


@dataclass(frozen=True)
class Review:
    id: int
    text: str
    label: str
    category: str


def same_text(text: str) -> str:
    """A text as compared for duplicates: case and runs of spaces ignored."""
    return " ".join(text.casefold().split())


def load_reviews(path: str | Path = REVIEWS) -> list[Review]:
    """The reviews of a challenge-set file, one JSON object a line, checked: exactly the fields
    id, text, label and category; ids unique integers; labels from LABELS; texts non-empty and
    distinct (ignoring case and spacing); categories from CATEGORIES."""
    path = Path(path)
    reviews: list[Review] = []
    ids: dict[int, int] = {}
    texts: dict[str, int] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            where = f"{path}:{number}"
            if not line.strip():
                raise ChallengeSetError(f"{where}: an empty line")
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise ChallengeSetError(f"{where}: not JSON ({error.msg})") from None
            if not isinstance(item, dict) or sorted(item) != sorted(FIELDS):
                raise ChallengeSetError(f"{where}: expected an object with exactly the fields {', '.join(FIELDS)}")
            review_id, text, label, category = (item[name] for name in FIELDS)
            if type(review_id) is not int:
                raise ChallengeSetError(f"{where}: id {review_id!r} is not an integer")
            if review_id in ids:
                raise ChallengeSetError(f"{where}: id {review_id} is also on line {ids[review_id]}")
            if not isinstance(text, str) or not text.strip():
                raise ChallengeSetError(f"{where}: the text is empty or not a string")
            if same_text(text) in texts:
                raise ChallengeSetError(f"{where}: the same text as line {texts[same_text(text)]}")
            if label not in LABELS:
                raise ChallengeSetError(f"{where}: label {label!r} is not one of {', '.join(LABELS)}")
            if category not in CATEGORIES:
                raise ChallengeSetError(f"{where}: category {category!r} is not one of {', '.join(CATEGORIES)}")
            ids[review_id], texts[same_text(text)] = number, number
            reviews.append(Review(review_id, text, label, category))
    if not reviews:
        raise ChallengeSetError(f"{path}: holds no reviews")
    return reviews
