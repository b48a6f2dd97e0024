"""The device runtime: raw review text in, sentiment out, on LiteRT, tflite-runtime or ONNX Runtime."""

from importlib import metadata

from runtime.classifier import ClassifierOptions, Prediction, SentimentClassifier

try:
    __version__ = metadata.version("imdb-sentiment-edge")
except metadata.PackageNotFoundError:  # a clone on PYTHONPATH, not installed
    __version__ = "0+unknown"

__all__ = ["ClassifierOptions", "Prediction", "SentimentClassifier", "__version__"]
