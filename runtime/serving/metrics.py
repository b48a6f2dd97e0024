"""The server's Prometheus metrics (docs/serving.md lists them), in a registry of its own, so
two servers in one process (the tests') never count into each other."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from runtime.classifier import Prediction


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imdb_sentiment_http_requests",
            "HTTP requests answered, by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imdb_sentiment_http_request_duration_seconds",
            "Time from a request's arrival at the application to its answer",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
        )
        self.in_flight = Gauge(
            "imdb_sentiment_http_requests_in_flight", "Requests being answered", registry=self.registry
        )
        self.reviews = Counter(
            "imdb_sentiment_reviews_classified",
            "Reviews classified, by predicted label",
            ["label"],
            registry=self.registry,
        )
        self.reviews_refused = Counter(
            "imdb_sentiment_reviews_refused",
            "Texts of a request that could not be classified (no words, too long)",
            registry=self.registry,
        )
        self.ready = Gauge(
            "imdb_sentiment_ready", "1 when the model is loaded and the server is not draining", registry=self.registry
        )
        self.model = Info("imdb_sentiment_model", "The loaded model", registry=self.registry)
        self.model_version = Gauge(
            "imdb_sentiment_model_version",
            "The version serving: N of MODELS/versions/N with --models, 1 for a --model folder",
            registry=self.registry,
        )
        self.reloads = Counter(
            "imdb_sentiment_model_reloads",
            "Reloads of the model (--models), by outcome: swapped, unchanged, failed (the old version serves on)",
            ["outcome"],
            registry=self.registry,
        )

    def count_outcomes(self, outcomes: list[Prediction | str]) -> None:
        """Count each text's outcome: a Prediction (or Explanation) by its label, a message as refused."""
        for outcome in outcomes:
            if isinstance(outcome, str):
                self.reviews_refused.inc()
            else:
                self.reviews.labels(outcome.label).inc()

    def count_request(self, endpoint: str, method: str, status: int, seconds: float | None = None) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint).observe(seconds)

    def describe_model(self, description: dict, version: str) -> None:
        """The serving model's info metric, from `SentimentClassifier.describe()`, and its version."""
        self.model.info(
            {key: str(description.get(key)) for key in ("name", "backend", "interpreter", "graph", "precision")}
            | {"labels": ",".join(description["labels"]), "version": version}
        )
        self.model_version.set(int(version) if version.isdigit() else 0)
