"""The options that choose and load a model, shared by every command that loads one
(`imdb-sentiment`, `imdb-sentiment-serve`): one frozen record, the command-line options that fill
it, and the load. The commands receive a `ModelOptions`, never an argparse Namespace, so the server
need not import the CLI (runtime/predict.py) to load what the CLI loads.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from runtime import backends, bundle
from runtime.classifier import ClassifierOptions, SentimentClassifier


@dataclass(frozen=True)
class ModelOptions:
    """Which artifact to load and how; the defaults are `SentimentClassifier.from_bundle`'s."""

    folder: Path = bundle.DEFAULT_BUNDLE
    backend: str = "auto"  # "auto", or one of backends.BACKENDS
    precision: str = "float32"
    graph: str = "cached"
    threads: int | None = None  # interpreter threads; None lets the interpreter choose
    allow_unverified: bool = False  # load an artifact without a passing parity record (warns)
    verbose: bool = False  # show the interpreters' own log lines on stderr
    trust: Path | None = None  # a PEM public key whose signature the bundle must carry

    def classifier_options(self) -> ClassifierOptions:
        """What the classifier is loaded with: --verbose travels with it (its later loads too), not
        through a process-wide switch."""
        return ClassifierOptions(
            folder=self.folder,
            backend=self.backend,
            precision=self.precision,
            graph=self.graph,
            threads=self.threads,
            allow_unverified=self.allow_unverified,
            show_native_logs=self.verbose,
            trust=self.trust,
        )


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
        help="interpreter; auto takes the first installed of tflite, onnx",
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


def from_arguments(args: argparse.Namespace) -> ModelOptions:
    """The options parsed by a parser that `add_model_arguments` filled."""
    return ModelOptions(
        folder=args.model,
        backend=args.backend,
        precision=args.precision,
        graph=args.graph,
        threads=getattr(args, "threads", None),  # only with add_model_arguments(threads=True)
        allow_unverified=args.allow_unverified,
        verbose=args.verbose,
        trust=args.trust,
    )


def load_classifier(options: ModelOptions) -> SentimentClassifier:
    """The classifier the options ask for. An unverified artifact warns (UnverifiedArtifactWarning):
    each command decides how a warning is shown."""
    return SentimentClassifier.create_from_options(options.classifier_options())
