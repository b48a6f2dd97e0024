"""The device runtime: raw review text in, sentiment out, on LiteRT, tflite-runtime or ONNX Runtime."""

from runtime.classifier import ClassifierOptions, Prediction, SentimentClassifier

__all__ = ["ClassifierOptions", "Prediction", "SentimentClassifier"]
