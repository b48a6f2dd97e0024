"""The device runtime: raw review text in, sentiment out, on LiteRT, tflite-runtime or ONNX Runtime."""

from runtime.classifier import Prediction, SentimentClassifier

__all__ = ["Prediction", "SentimentClassifier"]
