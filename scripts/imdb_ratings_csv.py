"""Turn the IMDB archive into a CSV of star ratings: `python scripts/imdb_ratings_csv.py ARCHIVE OUT.csv`.

Each labelled review's file name carries its rating, `aclImdb/<split>/<pos|neg>/<id>_<rating>.txt`
(1-4 for negative, 7-10 for positive reviews), so the archive also holds an 8-label task. The CSV
has the columns `text`, `rating` and `split` (train or test, the archive's own split, whose
films do not overlap), one review a row in the archive's order, UTF-8, standard CSV quoting:

    python scripts/imdb_ratings_csv.py ../shared/data/aclImdb_labeled.tar.gz ratings.csv
    python -m training.fit --data ratings.csv --label-column rating

The archive (or an extracted aclImdb/ folder) is streamed member by member, as training reads it
(training.data), and the CSV is written through a temporary file: a failure leaves no CSV behind.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.bundle import atomic_path  # noqa: E402
from training import data  # noqa: E402

_RATED_REVIEW = re.compile(r"aclImdb/(train|test)/(?:neg|pos)/\d+_(\d+)\.txt")
COLUMNS = ("text", "rating", "split")


def write_ratings_csv(source: Path, output: Path) -> Counter:
    """Write the CSV; return how many reviews each (split, rating) has."""
    if not source.exists():
        raise data.DataError(f"{source}: no such file or folder")
    counts = Counter()
    with atomic_path(output) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for name, raw in data.review_files(source):
                split, rating = _RATED_REVIEW.fullmatch(name).groups()
                # Decoded as training.data decodes the reviews, so the texts are the same.
                writer.writerow((raw.decode("utf-8", "replace"), int(rating), split))
                counts[split, int(rating)] += 1
        if not counts:
            raise data.DataError(f"{source}: no labelled reviews (aclImdb/<split>/<pos|neg>/<id>_<rating>.txt)")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/imdb_ratings_csv.py", description=__doc__.split("\n")[0])
    parser.add_argument("archive", type=Path, help="aclImdb archive (.tar.gz) or extracted folder")
    parser.add_argument("output", type=Path, help="the CSV to write")
    args = parser.parse_args(argv)
    try:
        counts = write_ratings_csv(args.archive, args.output)
    except (data.DataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for split in ("train", "test"):
        ratings = sorted(rating for (kind, rating) in counts if kind == split)
        shown = ", ".join(f"{rating}: {counts[split, rating]:,}" for rating in ratings)
        print(f"{split}: {sum(counts[split, rating] for rating in ratings):,} reviews ({shown})")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
