"""The model options side by side, the table users choose from: `python -m benchmarks.options`.

From the repository root, with the train extra (the challenge set is read from each bundle's Keras
model), after training and exporting one bundle per option with one recipe:

    python -m benchmarks.options --data ../shared/data/aclImdb_labeled.tar.gz \\
        seed=runs/options/seed/imdb-lstm attention=runs/options/attention/imdb-lstm ...
    python scripts/update_readme.py      # renders benchmarks/options.json into docs/training.md

For each bundle: its training figures, as benchmarks.runs makes a run's row (validation,
the one test reading, the negation-and-contrast challenge set, minutes, the command that repeats
it); the median test review's latency on one thread through the runtime, LiteRT and ONNX Runtime,
float32 and int8, every bundle's paths loaded at once and timed round-robin
(benchmarks.bench.interleaved_latency), so the machine's drift moves them alike; and each
artifact's size. Ratios are against the first bundle named. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from benchmarks import bench, runs
from runtime import SentimentClassifier, backends, bundle
from runtime.text import Tokenizer

RESULTS = bench.HERE / "options.json"
GRAPH = "cached"  # the graph that classifies: a review costs its own tokens for every option


def path_name(backend: str, precision: str) -> str:
    return f"{'litert' if backend == 'tflite' else 'onnxruntime'} {precision}"


def parse_named(value: str) -> tuple[str, Path]:
    """NAME=FOLDER on the command line."""
    name, separator, folder = value.partition("=")
    if not separator or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=BUNDLE_FOLDER, got {value!r}")
    return name, Path(folder)


def run(bundles: list[tuple[str, Path]], test, rounds: int = bench.ROUNDS) -> dict:
    """Every bundle's figures, its latency measured on real reviews of `test` (a training.data Split)."""
    first = bundle.Manifest.read(bundles[0][1]).model_config
    tokenizer = Tokenizer.load(bundles[0][1] / bundle.VOCABULARY_NAME, first.sequence_length)
    median_tokens, buckets = bench.review_buckets(tokenizer, test)
    median_bucket = {median_tokens: buckets[median_tokens]}
    models, calls = [], {}
    with contextlib.ExitStack() as stack:
        for name, folder in bundles:
            print(f"reading {name}: its run's row and the challenge set", file=sys.stderr)
            model = {"name": name, "row": runs.compact(folder, name), "paths": {}}
            for backend in backends.available_backends():
                for precision in bundle.PRECISIONS:
                    classifier = stack.enter_context(
                        SentimentClassifier.from_bundle(folder, backend, precision, GRAPH, threads=1)
                    )
                    kind = bundle.ArtifactKind(backend, GRAPH, precision)
                    model["paths"][path_name(backend, precision)] = {
                        "artifact_bytes": classifier.manifest.artifact(kind).bytes
                    }
                    calls[f"{name} {path_name(backend, precision)}"] = (classifier.classify, bench.REVIEWS_PER_BLOCK)
            models.append(model)
        print(f"measuring latency: {len(calls)} paths, {rounds} rounds, round-robin", file=sys.stderr)
        latencies = bench.interleaved_latency(calls, median_bucket, rounds)
    for model in models:
        for path, figures in model["paths"].items():
            figures["latency"] = latencies[f"{model['name']} {path}"][str(median_tokens)]
    return {"machine": bench.machine(), "median_test_review_tokens": median_tokens, "rounds": rounds, "models": models}


def table(results: dict) -> str:
    """The markdown table of docs/training.md: one row a bundle, accuracy then cost, ratios to the first."""
    models = results["models"]
    baseline, paths, machine = models[0], list(models[0]["paths"]), results["machine"]

    def latency(model, path):
        p50 = model["paths"][path]["latency"]["p50_ms"]
        return f"{p50:.2f} ({p50 / baseline['paths'][path]['latency']['p50_ms']:.1f}x)"

    runtimes = list(dict.fromkeys(path.split()[0] for path in paths))  # litert, onnxruntime

    def sizes(model, runtime):
        return " / ".join(
            f"{figures['artifact_bytes'] / 2**20:.2f}"
            for path, figures in model["paths"].items()
            if path.startswith(runtime)
        )

    lines = [
        f"The median test review ({results['median_test_review_tokens']} tokens) on one thread: p50 in "
        f"milliseconds and its ratio to the {baseline['name']} row; artifact sizes in MiB, float32 / int8. Measured with "
        f"`python -m benchmarks.options` on {machine['date'][:10]}: {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['versions']['python']}.",
        "",
        "| model | validation (epoch) | test | challenge set | minutes | "
        + " | ".join(f"{path} ms" for path in paths)
        + " | "
        + " | ".join(f"{runtime} MiB" for runtime in runtimes)
        + " | command |",
        "|---" * (6 + len(paths) + len(runtimes)) + "|",
    ]
    for model in models:
        row = model["row"]
        best = row["validation_accuracy"][row["best_epoch"] - 1]
        lines.append(
            f"| {model['name']} | {runs.percent(best)} ({row['best_epoch']} of {len(row['validation_accuracy'])}) "
            f"| {runs.percent(row['test_accuracy'])} | {runs.percent(row['challenge_accuracy'])} | {row['training_minutes']} | "
            + " | ".join(latency(model, path) for path in paths)
            + " | "
            + " | ".join(sizes(model, runtime) for runtime in runtimes)
            + f" | `{row['command']}` |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.options", description=__doc__.split("\n")[0])
    parser.add_argument("bundles", nargs="+", type=parse_named, metavar="NAME=BUNDLE", help="the first is the baseline")
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="aclImdb archive or folder for real reviews (default: $IMDB_DATA)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    from training.data import DataError, load_imdb

    try:
        results = run(args.bundles, load_imdb(args.data).test)
    except (DataError, bundle.BundleError, backends.BackendError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    bundle.write_json(args.output, results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
