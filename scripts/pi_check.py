"""Classify and explain reviews with every artifact of a bundle on every installed backend; write JSON.

scripts/pi_emulation.py runs this same file twice, under the x86_64 host's Python and under the
emulated aarch64 Python of a Raspberry Pi OS root, and compares the two outputs. It needs only
the device runtime (the repo root on PYTHONPATH), numpy and the interpreters: no TensorFlow.

    python scripts/pi_check.py --bundle models/imdb-lstm --reviews scripts/pi_reviews.txt --out out.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys

from runtime import SentimentClassifier, backends, bundle

PACKAGES = ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "uvicorn", "httptools")


def read_reviews(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def classify_everywhere(folder: str, texts: list[str]) -> list[dict]:
    """One record per (backend, precision, graph): the probabilities, or the error."""
    runs = []
    for backend in backends.available_backends():
        for precision in bundle.PRECISIONS:
            for graph in bundle.GRAPHS:
                record = {"backend": backend, "precision": precision, "graph": graph}
                try:
                    with SentimentClassifier.from_bundle(
                        folder, backend=backend, precision=precision, graph=graph
                    ) as classifier:
                        record["interpreter"] = classifier.describe()["interpreter"]
                        record["probabilities"] = classifier.probabilities(texts).tolist()
                except Exception as error:  # reported to the driver, which fails the run
                    record["error"] = f"{type(error).__name__}: {error}"
                runs.append(record)
    return runs


def explain_everywhere(folder: str, texts: list[str]) -> list[dict]:
    """One record per (backend, precision) of explain's per-step graph: every label's probability
    after each word read of every review, in order, or the error."""
    runs = []
    for backend in backends.available_backends():
        for precision in bundle.PRECISIONS:
            record = {"backend": backend, "precision": precision, "graph": bundle.STEPS_GRAPH}
            try:
                with SentimentClassifier.from_bundle(folder, backend=backend, precision=precision) as classifier:
                    record["interpreter"] = classifier.describe()["interpreter"]
                    record["probabilities"] = [
                        list(word.probabilities.values()) for text in texts for word in classifier.explain(text).words
                    ]
            except Exception as error:  # reported to the driver, which fails the run
                record["error"] = f"{type(error).__name__}: {error}"
            runs.append(record)
    return runs


def server_imports() -> bool | str:
    """True if the HTTP server's modules (uvicorn, httptools' compiled parser, Starlette) import here."""
    try:
        import runtime.serve  # noqa: F401
    except Exception as error:  # reported to the driver, which fails the run
        return f"{type(error).__name__}: {error}"
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--reviews", required=True, help="a text file, one review a line")
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    args = parser.parse_args(argv)

    texts = read_reviews(args.reviews)
    runs = classify_everywhere(args.bundle, texts) + explain_everywhere(args.bundle, texts)
    manifest = bundle.Manifest.read(args.bundle)
    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "backends": backends.available_backends(),
        "bundle": {"name": manifest.name, "created": manifest.created},
        "labels": list(manifest.model_config.labels),
        "reviews": len(texts),
        "server_imports": server_imports(),
        # The device runtime must never pull in TensorFlow, even where it is installed.
        "tensorflow_imported": "tensorflow" in sys.modules,
        "runs": runs,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    print(
        f"{result['machine']} Python {result['python']}: {len(runs)} runs, "
        f"{sum('error' in run for run in runs)} failed, tensorflow imported: {result['tensorflow_imported']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
