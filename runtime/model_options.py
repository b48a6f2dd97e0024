"""The command-line options that choose and load a model, shared by every command that loads one
(`imdb-sentiment`, `imdb-sentiment-serve`), and the record they fill: the classifier's own
`ClassifierOptions` (runtime/loading.py), the one options type. The commands receive that record,
never an argparse Namespace, so the server need not import the CLI (runtime/predict.py) to load
what the CLI loads.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runtime import backends, bundle
from runtime.classifier import ClassifierOptions, SentimentClassifier


def thread_count(text: str) -> int:
    try:
        value = int(text)
        backends.check_threads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {backends.MAX_THREADS}, got {text}") from None
    return value


def add_model_arguments(parser: argparse.ArgumentParser, threads: bool = False) -> None:
    """The options that choose the bundle, interpreter, precision and graph; with `threads`, also
    --threads (the CLI's; the server's pool runs each classifier on one thread)."""
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("IMDB_SENTIMENT_MODEL", bundle.DEFAULT_BUNDLE)),
        help="model bundle folder ($IMDB_SENTIMENT_MODEL, else the shipped model)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", *backends.BACKENDS),
        default="auto",
        help="interpreter; auto: the first installed one, tflite then onnx, whose artifact the bundle has",
    )
    parser.add_argument("--precision", choices=bundle.PRECISIONS, default="float32", help="artifact precision")
    parser.add_argument(
        "--graph",
        choices=bundle.GRAPHS,
        default="cached",
        help="cached: run only a review's own tokens; full: all padded steps",
    )
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="load an artifact that has no passing parity record (warns on stderr)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the interpreters' own log lines on stderr")
    parser.add_argument(
        "--trust", type=Path, default=None, help="PEM public key: refuse a bundle without its valid signature"
    )
    if threads:
        parser.add_argument("--threads", type=thread_count, default=1, help="interpreter threads")


def from_arguments(args: argparse.Namespace) -> ClassifierOptions:
    """The options parsed by a parser that `add_model_arguments` filled. --verbose travels with the
    classifier (its later loads too), not through a process-wide switch."""
    return ClassifierOptions(
        folder=args.model,
        backend=args.backend,
        precision=args.precision,
        graph=args.graph,
        threads=getattr(args, "threads", None),  # only with add_model_arguments(threads=True)
        allow_unverified=args.allow_unverified,
        show_native_logs=args.verbose,
        trust=args.trust,
    )


def load_classifier(options: ClassifierOptions) -> SentimentClassifier:
    """The classifier the options ask for. An unverified artifact warns (UnverifiedArtifactWarning):
    each command decides how a warning is shown."""
    return SentimentClassifier.create_from_options(options)
