"""Classify reviews from the command line: `python -m runtime.predict`.

    python -m runtime.predict "A wonderful film with a brilliant cast."
    python -m runtime.predict --file reviews.txt          # one review a line
    cat reviews.jsonl | python -m runtime.predict --jsonl -   # {"text": ...} or "..." a line

Prints one JSON object a review (or a line of text with --format text), in input order.
A review that cannot be classified (no words, invalid UTF-8, bad JSON) gets an object with an
"error" instead, the others go on, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Iterator

from runtime import backends, bundle
from runtime.classifier import SentimentClassifier


class InputError(ValueError):
    """One input line that is not a review."""


def lines_of(stream, jsonl: bool) -> Iterator[tuple[str | None, str | None]]:
    """(text, error) for each line of a binary stream, read one line at a time."""
    for raw in stream:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as error:
            yield None, f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start})"
            continue
        if not jsonl:
            yield line, None
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            yield None, f"not JSON ({error.msg})"
            continue
        text = value.get("text") if isinstance(value, dict) else value
        yield (text, None) if isinstance(text, str) else (None, 'expected a JSON string or {"text": "..."}')


class Progress:
    """A one-line progress meter on stderr for long files, shown only on a terminal."""

    def __init__(self, stream, total_bytes: int | None):
        self.stream, self.total = stream, total_bytes
        self.enabled = bool(total_bytes) and sys.stderr.isatty()
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.enabled and self.count % 100 == 0:
            percent = 100 * self.stream.tell() / self.total
            print(f"\r{self.count:,} reviews, {percent:5.1f} %", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(f"\r{self.count:,} reviews, done   ", file=sys.stderr)


def format_result(index: int, text: str | None, prediction, error: str | None, style: str) -> str:
    if style == "json":
        body = {"index": index, "error": error} if error else {"index": index, **prediction.to_dict()}
        return json.dumps(body, ensure_ascii=False)
    if error:
        return f"{index}\terror: {error}"
    preview = " ".join(text.split())[:70]
    return f"{index}\t{prediction.label}\t{prediction.score:.3f}\t{preview}"


def classify_stream(classifier: SentimentClassifier, items, style: str, out) -> int:
    """Classify (text, error) items, write one result each; return how many failed."""
    failed = 0
    for index, (text, error) in enumerate(items):
        prediction = None
        if error is None:
            try:
                prediction = classifier.classify(text)
            except ValueError as problem:
                error = str(problem)
        failed += error is not None
        print(format_result(index, text, prediction, error, style), file=out)
    return failed


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the bundle, interpreter, precision and graph (CLI and server)."""
    parser.add_argument("--model", type=Path, default=Path(os.environ.get("IMDB_SENTIMENT_MODEL", bundle.DEFAULT_BUNDLE)),
                        help="model bundle folder (default: $IMDB_SENTIMENT_MODEL, else the shipped models/imdb-lstm)")
    parser.add_argument("--backend", choices=("auto", *backends.BACKENDS), default="auto")
    parser.add_argument("--precision", choices=bundle.PRECISIONS, default="float32")
    parser.add_argument("--graph", choices=bundle.GRAPHS, default="cached",
                        help="cached: run only a review's own tokens (default); full: all padded steps")


def inputs(args) -> Iterator[tuple[str | None, str | None]]:
    """Every review asked for, in order: the --file's lines, then the arguments ('-': stdin)."""
    if args.file is not None:
        with open(args.file, "rb") as stream:
            progress = Progress(stream, args.file.stat().st_size)
            for item in lines_of(stream, args.jsonl):
                yield item
                progress.step()
            progress.close()
    for review in args.reviews:
        if review == "-":
            yield from lines_of(sys.stdin.buffer, args.jsonl)
        else:
            yield review, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.predict", description=__doc__.split("\n")[0])
    parser.add_argument("reviews", nargs="*", help="review texts; '-' reads one review a line from standard input")
    parser.add_argument("--file", type=Path, help="read one review a line from this file")
    parser.add_argument("--jsonl", action="store_true", help='input lines are JSON: "text" or {"text": "..."}')
    parser.add_argument("--format", choices=("json", "text"), default="json", help="output format")
    add_model_arguments(parser)
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.reviews and args.file is None:
        parser.error("give review texts, '-' for standard input, or --file")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.file is not None and not args.file.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 1

    try:
        classifier = SentimentClassifier.from_bundle(args.model, args.backend, args.precision, args.graph, args.threads)
    except (bundle.BundleError, backends.BackendError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    with classifier:
        failed = classify_stream(classifier, inputs(args), args.format, sys.stdout)
    if failed:
        print(f"error: {failed} review(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
