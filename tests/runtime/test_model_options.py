"""runtime/model_options.py: the one record of the options that choose and load a model, as the
commands' parsers fill it, and the load it asks for."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from runtime import backends, model_options
from runtime.classifier import ClassifierOptions, SentimentClassifier
from runtime.model_options import ModelOptions


def parsed(argv: list[str], threads: bool = False) -> ModelOptions:
    parser = argparse.ArgumentParser()
    model_options.add_model_arguments(parser, threads=threads)
    return model_options.from_arguments(parser.parse_args(argv))


def test_the_arguments_fill_the_record(monkeypatch):
    monkeypatch.delenv("IMDB_SENTIMENT_MODEL", raising=False)
    assert parsed([]) == ModelOptions()
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
    assert options == ModelOptions(Path("elsewhere"), "onnx", "int8", "full", 3, True, True)


def test_threads_is_an_option_only_when_asked_for():
    with pytest.raises(SystemExit):
        parsed(["--threads", "2"])
    assert parsed([], threads=True).threads == 1  # the CLI's default


def test_the_load_passes_every_option_by_name(monkeypatch):
    calls = []
    monkeypatch.setattr(
        SentimentClassifier, "create_from_options", classmethod(lambda cls, options: calls.append(options))
    )
    model_options.load_classifier(ModelOptions(Path("b"), "tflite", "int8", "cached", 2, True, verbose=True))
    assert calls == [
        ClassifierOptions(
            folder=Path("b"),
            backend="tflite",
            precision="int8",
            graph="cached",
            threads=2,
            allow_unverified=True,
            show_native_logs=True,
        )
    ]
    assert not hasattr(backends, "show_native_logs")  # --verbose travels in the options, not a process-wide switch
