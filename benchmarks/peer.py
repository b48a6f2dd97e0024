"""The peer: what a bag of n-grams gets on the same benchmarks as the LSTM: `python -m benchmarks.peer`.

    python -m benchmarks.peer --data ../shared/data/aclImdb_labeled.tar.gz --sst ../shared/data/sst \\
        --cad-train ../shared/data/cad/train_paired.tsv --cad ../shared/data/cad/dev_paired.tsv \\
        --challenge datasets/negation-contrast/reviews.jsonl

NB-weighted logistic regression on binary word 1-3-grams (Wang & Manning 2012; training/teacher.py,
the same features as the LSTM's teacher, through the runtime's tokenizer), trained on all IMDB
training reviews, then again with the extra supervision the LSTM's recipe reads (every labelled
treebank phrase and both sides of the counterfactual training pairs). Scored on the benchmarks
export.evaluate scores a bundle on, read by the same code. Writes benchmarks/peer.json, which
scripts/update_readme.py renders beside the LSTM's figures in docs/training.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.sections import cpu_name
from export.evaluate import read_benchmarks, score_benchmarks
from runtime.bundle import to_plain
from training import pairs, phrases, sources
from training.teacher import fit_predict, ngram_vectorizer

RESULTS = Path(__file__).with_name("peer.json")
C = 0.1  # logistic regression's inverse regularisation for the peer (less than the teacher's 1.0: many more n-grams)
LABELS = ("negative", "positive")


def train_and_score(texts: list[str], labels: np.ndarray, benchmarks) -> tuple[dict, float]:
    """Fit the peer on `texts` and score it on `benchmarks`; and the seconds it took."""
    started = time.perf_counter()
    vectorizer = ngram_vectorizer(len(texts))
    features = vectorizer.fit_transform(texts).tocsr()

    def predict(batch: list[str]) -> np.ndarray:
        test = vectorizer.transform(batch).tocsr()
        return fit_predict(features, labels, test, len(LABELS), C).argmax(axis=1)

    scores = score_benchmarks(predict, benchmarks)
    return scores, time.perf_counter() - started


def run(data: str, sst: Path, cad_train: Path, cad: Path, challenge: Path) -> list[dict]:
    dataset = sources.load(data, sources.DataOptions())
    benchmarks = read_benchmarks(LABELS, dataset.test, data, sst, cad, challenge)
    tree_split = phrases.to_labels(phrases.read_trees(sst / "train.txt").phrases, 2, str(sst))
    pair_split = pairs.to_labels(pairs.read_pairs(cad_train), LABELS)
    rows = []
    for name, extra in (("IMDB only", []), ("IMDB + phrases + pairs", [tree_split, pair_split])):
        texts = dataset.train.texts + [text for split in extra for text in split.texts]
        labels = np.concatenate([dataset.train.labels, *[split.labels for split in extra]])
        scores, seconds = train_and_score(texts, labels, benchmarks)
        rows.append({"peer": name, "training_texts": len(texts), "seconds": round(seconds, 1), **to_plain(scores)})
        print(f"{name}: " + ", ".join(f"{key} {100 * s.accuracy:.2f} %" for key, s in scores.items()), file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="IMDB's archive")
    parser.add_argument("--sst", type=Path, required=True, help="the treebank's folder (train, dev, test)")
    parser.add_argument("--cad-train", type=Path, required=True, help="counterfactual training pairs")
    parser.add_argument("--cad", type=Path, required=True, help="counterfactual pairs to score (dev)")
    parser.add_argument("--challenge", type=Path, required=True, help="the challenge set's reviews.jsonl")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default: {RESULTS.name}")
    args = parser.parse_args(argv)
    rows = run(args.data, args.sst, args.cad_train, args.cad, args.challenge)
    record = {"measured": datetime.date.today().isoformat(), "machine": cpu_name(), "C": C, "rows": rows}
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(args.output)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
