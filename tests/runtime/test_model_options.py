"""runtime/model_options.py: the command-line options that choose and load a model fill the
classifier's own ClassifierOptions, the one options type, and the load passes it on as it is."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from runtime import backends, model_options
from runtime.classifier import ClassifierOptions, SentimentClassifier


def parsed(argv: list[str], threads: bool = False) -> ClassifierOptions:
    parser = argparse.ArgumentParser()
    model_options.add_model_arguments(parser, threads=threads)
    return model_options.from_arguments(parser.parse_args(argv))


def test_the_arguments_fill_the_record(monkeypatch):
    monkeypatch.delenv("IMDB_SENTIMENT_MODEL", raising=False)
    assert parsed([]) == ClassifierOptions()
    options = parsed(
        [
            "--model",
            "elsewhere",
            "--backend",
            "onnx",
            "--precision",
            "int8",
            "--graph",
            "full",
            "--allow-unverified",
            "--verbose",
            "--threads",
            "3",
        ],
        threads=True,
    )
    assert options == ClassifierOptions(
        folder=Path("elsewhere"),
        backend="onnx",
        precision="int8",
        graph="full",
        threads=3,
        allow_unverified=True,
        show_native_logs=True,
    )


def test_threads_is_an_option_only_when_asked_for():
    with pytest.raises(SystemExit):
        parsed(["--threads", "2"])
    assert parsed([], threads=True).threads == 1  # the CLI's default


def test_the_load_passes_the_options_as_they_are(monkeypatch):
    calls = []
    monkeypatch.setattr(
        SentimentClassifier, "create_from_options", classmethod(lambda cls, options: calls.append(options))
    )
    options = parsed(["--model", "b", "--backend", "tflite", "--precision", "int8", "--verbose"], threads=True)
    model_options.load_classifier(options)
    assert calls == [options] and calls[0].show_native_logs and calls[0].threads == 1
    assert not hasattr(backends, "show_native_logs")  # --verbose travels in the options, not a process-wide switch
