"""Benchmark every way this project answers a review, side by side: `python -m benchmarks.bench`.

From the repository root, with the train extra (it converts graphs and measures Keras):

    python -m benchmarks.bench --data ../shared/data/aclImdb_labeled.tar.gz   # writes benchmarks/results.json
    python -m benchmarks.bench --render benchmarks/results.json --markdown BENCHMARKS.md   # the report, from that JSON

`--markdown` rewrites BENCHMARKS.md and keeps the sections other harnesses own in it (between
`<!-- begin:NAME -->` and `<!-- end:NAME -->`, such as `python -m probes.load_and_lock`'s);
without it the report goes to stdout.

In one run, on the same real test reviews: each backend x graph x precision (and TFLite without
XNNPACK; when TensorFlow is installed to convert them, the unrolled full graph and, with
tf-keras, the fused-LSTM cached graph), and the Keras
model as the seed uses it (`model.predict` on one review) and called directly, with TensorFlow on
one thread like every runtime path. Figures:
latency p50/p99 for one review on one thread by length bucket (all paths loaded at once and
timed round-robin, so the machine's drift does not move the ratios), throughput for 1,000 reviews on
1 and 2 threads, cold start of a new CLI process to its first answer with its peak memory,
bundle verification and vocabulary loading time, artifact size, and how close the best path
comes to this CPU's measured matrix-multiply peak. Ratios are against Keras `model.predict`,
overall and round by round (each round's p50s), which shows how far the machine moved.
Timings are never asserted anywhere: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.sections import cpu_name
from runtime import SentimentClassifier, backends, bundle
from runtime.classifier import UnverifiedArtifactWarning
from runtime.text import WORD_PATTERN, Tokenizer, normalize, split_words

BUCKETS = (25, 50, 100, 250, 500)  # review length in tokens (start id included); the median is added
REVIEWS_PER_BUCKET = 40
ROUNDS = 25
REVIEWS_PER_BLOCK = 8  # a path's reviews in a row in each round: 200 calls a bucket over the rounds
KERAS_REVIEWS_PER_BLOCK = 2  # model.predict takes ~120 ms a review
THROUGHPUT_REVIEWS = 1000
KERAS_SPEEDUP_TARGET = 250  # issue 5: the best path against Keras model.predict, median review
EXAMPLE = "A wonderful film with a brilliant cast. I loved every minute of it."
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
MARKDOWN = HERE.parent / "BENCHMARKS.md"
SECTION = re.compile(r"<!-- begin:([\w-]+) -->.*?<!-- end:\1 -->\n?", re.DOTALL)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def pick_buckets(tokenizer: Tokenizer, texts: list[str], median: int) -> dict[int, list[str]]:
    """Real reviews whose token count is near each bucket (exactly 500: the truncated ones)."""
    lengths = np.array([len(tokenizer.token_ids(text)) for text in texts])
    chosen = {}
    for target in sorted({*BUCKETS, median}):
        near = (
            np.flatnonzero(lengths == target)
            if target == tokenizer.sequence_length
            else np.flatnonzero(np.abs(lengths - target) <= max(3, target // 20))
        )
        if len(near):
            chosen[target] = [texts[i] for i in near[:REVIEWS_PER_BUCKET]]
    return chosen


def review_buckets(tokenizer: Tokenizer, test) -> tuple[int, dict[int, list[str]]]:
    """The median test review's token count, and real test reviews near each bucket's length."""
    from training.data import sample

    median = int(np.median([len(tokenizer.token_ids(text)) for text in test.texts]))
    return median, pick_buckets(tokenizer, sample(test, 5000, seed=1).texts, median)


def interleaved_latency(calls: dict, buckets: dict[int, list[str]], rounds: int = ROUNDS) -> dict[str, dict]:
    """Latency p50/p99 by bucket of each call, measured round-robin.

    calls maps a path name to (function of one review, reviews per block). Each round times every
    path on every bucket in turn, a short block of reviews each (the next ones of that bucket, so
    the rounds go through all of them), starting one path later each round. This machine is shared
    and has slow spells a fraction of a second long: many short blocks spread every path's calls
    over the whole run, so a spell slows all paths alike, while the calls within a block run back
    to back, warm, as a device answering reviews does.
    """
    timings = {name: {target: [] for target in buckets} for name in calls}
    for function, _ in calls.values():
        function(next(iter(buckets.values()))[0])  # warm-up: first-call allocations are not latency
    names = list(calls)
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for target, texts in buckets.items():
            for name in order:
                function, per_block = calls[name]
                times = []
                for offset in range(round_index * per_block, (round_index + 1) * per_block):
                    text = texts[offset % len(texts)]
                    started = time.perf_counter()
                    function(text)
                    times.append(time.perf_counter() - started)
                timings[name][target].append(times)
    return {
        name: {str(target): latency_figures(per_round) for target, per_round in by_bucket.items()}
        for name, by_bucket in timings.items()
    }


def latency_figures(per_round: list[list[float]]) -> dict:
    """p50 and p99 over every call, in ms, and the p50 of each round (how much the machine moved)."""
    values = [seconds for times in per_round for seconds in times]
    return {
        "p50_ms": percentile(values, 50) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "calls": len(values),
        "round_p50_ms": [percentile(times, 50) * 1e3 for times in per_round],
    }


def throughput(classifier: SentimentClassifier, texts: list[str]) -> float:
    """Reviews per second for one batch of `texts`, after a short warm-up."""
    classifier.probabilities(texts[:10])
    started = time.perf_counter()
    classifier.probabilities(texts)
    return len(texts) / (time.perf_counter() - started)


def open_runtime_path(
    stack: contextlib.ExitStack,
    folder: Path,
    backend: str,
    graph: str,
    precision: str,
    texts: list[str],
    xnnpack: bool = True,
    form: str | None = None,
) -> tuple[dict, SentimentClassifier]:
    """A path's description with its throughput and size, and a one-thread classifier, kept open on
    `stack`, whose latency is measured later with every other path's.

    A `form` other than the shipped one is a probe converted for this run without a parity check
    (other_form_bundle): the classifier refuses such an artifact unless allow_unverified, and then
    warns. Measuring the speed of an unproven probe form is what the benchmark is for, and it never
    answers a user, so it is loaded unverified and that expected warning is silenced here only."""
    path = {
        "backend": backend,
        "graph": graph,
        "precision": precision,
        "xnnpack": xnnpack if backend == "tflite" else None,
        "form": form or ("while" if backend == "tflite" else "onnx LSTM node"),
    }
    probe = form is not None

    def load(threads: int) -> SentimentClassifier:
        with warnings.catch_warnings():
            if probe:
                warnings.simplefilter("ignore", UnverifiedArtifactWarning)
            return SentimentClassifier.from_bundle(
                folder, backend, precision, graph, threads=threads, xnnpack=xnnpack, allow_unverified=probe
            )

    one_thread = stack.enter_context(load(1))
    with load(2) as two_threads:
        path["throughput"] = {"1": throughput(one_thread, texts), "2": throughput(two_threads, texts)}
    path["interpreter"] = one_thread.describe()["interpreter"]
    path["artifact_bytes"] = one_thread.manifest.artifact(bundle.ArtifactKind(backend, graph, precision)).bytes
    return path, one_thread


def time_breakdown(classifier: SentimentClassifier, texts: list[str], rounds: int = ROUNDS) -> dict:
    """Where one review's time goes on a path, p50 in ms over `texts` timed round-robin: tokenizing,
    the model with the token ids ready (interpreter plus the runtime's feed), and the whole call."""
    ids = {text: classifier.tokenizer.token_ids(text) for text in texts}
    calls = {
        "tokenize": (classifier.tokenizer.token_ids, REVIEWS_PER_BLOCK),
        "model": (lambda text: classifier.probabilities_of_ids(ids[text]), REVIEWS_PER_BLOCK),
        "classify": (classifier.classify, REVIEWS_PER_BLOCK),
    }
    latencies = interleaved_latency(calls, {0: texts}, rounds)
    return {f"{name}_ms": figures["0"]["p50_ms"] for name, figures in latencies.items()}


def tensorflow_on_one_thread() -> int | None:
    """Give TensorFlow one intra-op and one inter-op thread, as every runtime path has one: issue 5
    compares them on one thread. Call it before TensorFlow runs anything (it cannot change after)."""
    if not backends.installed("tensorflow"):
        return None
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf.config.threading.get_intra_op_parallelism_threads()


def open_keras(folder: Path, texts: list[str]) -> tuple[dict, object, object]:
    """The seed's way: the Keras model's description and throughput, `model.predict` on one review,
    and the model called directly on one review."""
    import keras

    from export.common import load_trained

    manifest, config, model = load_trained(folder)
    tokenizer = Tokenizer.load(folder / bundle.VOCABULARY_NAME, config.sequence_length)
    started = time.perf_counter()
    model.predict(tokenizer.encode(texts), batch_size=256, verbose=0)
    path = {
        "graph": "full",
        "precision": "float32",
        "form": "keras",
        "interpreter": f"keras {keras.__version__}",
        "throughput": {"1": len(texts) / (time.perf_counter() - started)},
        "artifact_bytes": manifest.artifacts["keras"].bytes,
    }
    return (
        path,
        lambda text: model.predict(tokenizer.encode([text]), verbose=0),
        lambda text: model(tokenizer.encode([text]), training=False),
    )


def other_form_bundle(folder: Path, workdir: Path, form: str) -> Path:
    """A copy of the bundle with its TFLite graphs converted in another graph form, without a parity
    check (so no data is read): open_runtime_path loads them unverified, as probes."""
    from export.tflite import export_tflite

    copy = workdir / form
    shutil.copytree(folder, copy)
    export_tflite(copy, form=form, data_source=None, parity_limit=None)
    return copy


# Measures a command from a small launcher process: a child forked straight from this (large)
# benchmark process would count the parent's pages in its peak resident memory until it execs.
_LAUNCHER = (
    "import json, os, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(json.dumps({'seconds': time.perf_counter() - started, 'peak_mib': usage.ru_maxrss / 1024,\n"
    "                  'exit_code': os.waitstatus_to_exitcode(status)}))\n"
)


def run_process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of a command, which must succeed."""
    measured = json.loads(
        subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, text=True, check=True).stdout
    )
    if measured["exit_code"] != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} exited with {measured['exit_code']}")
    return measured["seconds"], measured["peak_mib"]


def cold_starts(folder: Path, repeats: int = 3) -> list[dict]:
    """A new process from start to its first answer, through the CLI; Keras for comparison."""
    keras_script = (
        "import sys\n"
        "from export.common import load_trained\nfrom runtime import bundle\nfrom runtime.text import Tokenizer\n"
        "folder = sys.argv[1]; manifest, config, model = load_trained(folder)\n"
        "tokenizer = Tokenizer.load(f'{folder}/{bundle.VOCABULARY_NAME}', config.sequence_length)\n"
        "print(model.predict(tokenizer.encode([sys.argv[2]]), verbose=0))\n"
    )
    # The interpreter alone loading a model, without the runtime's tokenizer and checks: its floor.
    interpreter_script = (
        "import sys\nfrom pathlib import Path\nfrom runtime import backends\n"
        "backends.load_model(sys.argv[1], Path(sys.argv[2]).read_bytes(), threads=1)\n"
    )
    artifacts = bundle.Manifest.read(folder).artifacts
    commands = {"numpy import (floor)": [sys.executable, "-c", "import numpy"]}
    for backend in backends.available_backends():
        model = folder / artifacts[bundle.artifact_key(backend, "cached", "int8")].file
        commands[f"{backend} interpreter loading the cached int8 model (floor)"] = [
            sys.executable,
            "-c",
            interpreter_script,
            backend,
            str(model),
        ]
        for precision in bundle.PRECISIONS:
            commands[f"runtime.predict {backend} {precision}"] = [
                sys.executable,
                "-m",
                "runtime.predict",
                "--model",
                str(folder),
                "--backend",
                backend,
                "--precision",
                precision,
                EXAMPLE,
            ]
    if (folder / "model.keras").is_file() and backends.installed("keras"):
        commands["keras load + predict"] = [sys.executable, "-c", keras_script, str(folder), EXAMPLE]
    results = []
    for name, argv in commands.items():
        runs = [run_process(argv) for _ in range(repeats)]
        results.append(
            {"name": name, "seconds": statistics.median(r[0] for r in runs), "peak_mib": max(r[1] for r in runs)}
        )
    return results


def loading_costs(folder: Path, median_review: str, repeats: int = 20) -> dict:
    """What loading a bundle spends before the interpreter: manifest, sha256 checks, vocabulary."""
    manifest = bundle.Manifest.read(folder)
    config = manifest.model_config
    record = manifest.artifacts[bundle.artifact_key("tflite", "cached", "int8")]
    tokenizer = Tokenizer.load(folder / bundle.VOCABULARY_NAME, config.sequence_length)

    def best(function) -> float:
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            timings.append(time.perf_counter() - started)
        return min(timings) * 1e3

    return {
        "read_manifest_ms": best(lambda: bundle.Manifest.read(folder)),
        "verify_int8_artifact_ms": best(lambda: bundle.verify_file(folder, record)),
        "verify_vocabulary_ms": best(lambda: bundle.verify_file(folder, manifest.tokenizer.vocabulary)),
        "load_vocabulary_ms": best(lambda: Tokenizer.load(folder / bundle.VOCABULARY_NAME, config.sequence_length)),
        "tokenize_median_review_ms": best(lambda: tokenizer.token_ids(median_review)),
        "split_words_median_review_ms": best(lambda: split_words(median_review)),
        # the word regex that split_words replaced for ASCII text, timed beside it
        "word_regex_median_review_ms": best(lambda: WORD_PATTERN.findall(normalize(median_review))),
    }


def cpu_peak_gflops() -> float:
    """Single-thread float32 matrix-multiply rate, in a child with one BLAS thread."""
    code = (
        "import numpy as np, time\n"
        "a = np.random.rand(1024, 1024).astype(np.float32); b = a.copy(); a @ b\n"
        "t = time.perf_counter(); [a @ b for _ in range(10)]; s = time.perf_counter() - t\n"
        "print(10 * 2 * 1024 ** 3 / s / 1e9)\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    )


def flops_per_review(config, tokens: int) -> float:
    """Multiply-adds x 2 of the LSTM over `tokens` steps and the dense layer (gates dominate)."""
    per_step = 2 * 4 * config.lstm_units * (config.embedding_dim + config.lstm_units)
    return tokens * per_step + 2 * config.lstm_units * config.num_classes


def machine() -> dict:
    cpu = cpu_name()
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("ai_edge_litert", "tflite_runtime", "onnxruntime", "tensorflow", "keras"):
        if backends.installed(name):
            from importlib.metadata import PackageNotFoundError, version

            distribution = {
                "ai_edge_litert": "ai-edge-litert",
                "tflite_runtime": "tflite-runtime",
                "tensorflow": "tensorflow-cpu",
            }.get(name, name)
            try:
                versions[name] = version(distribution)
            except PackageNotFoundError:
                versions[name] = version(name)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run(folder: Path, data_source: str | None) -> dict:
    from training.data import load_imdb, sample

    config = bundle.Manifest.read(folder).model_config
    tokenizer = Tokenizer.load(folder / bundle.VOCABULARY_NAME, config.sequence_length)
    test = load_imdb(data_source).test
    median_tokens, buckets = review_buckets(tokenizer, test)
    texts = sample(test, THROUGHPUT_REVIEWS, seed=2).texts

    results = {
        "machine": machine(),
        "median_test_review_tokens": median_tokens,
        "paths": [],
        "rounds": ROUNDS,
        "keras_threads": tensorflow_on_one_thread() if (folder / "model.keras").is_file() else None,
    }
    print(
        f"buckets: { {k: len(v) for k, v in buckets.items()} }, median review {median_tokens} tokens", file=sys.stderr
    )
    calls, classifiers = {}, {}

    def add(path: dict, function, per_block: int = REVIEWS_PER_BLOCK) -> None:
        results["paths"].append(path)
        calls[path_name(path)] = (function, per_block)

    def add_runtime(path: dict, classifier: SentimentClassifier) -> None:
        add(path, classifier.classify)
        classifiers[path_name(path)] = classifier

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for backend in backends.available_backends():
            for graph in bundle.GRAPHS:
                for precision in bundle.PRECISIONS:
                    for xnnpack in (True, False) if backend == "tflite" else (True,):
                        print(
                            f"loading {backend} {graph} {precision}{'' if xnnpack else ' no-xnnpack'}", file=sys.stderr
                        )
                        add_runtime(*open_runtime_path(stack, folder, backend, graph, precision, texts, xnnpack))
        can_convert = (folder / "model.keras").is_file() and backends.installed("tensorflow")
        if "tflite" in backends.available_backends() and can_convert:
            from export.tflite import FORMS, TF_KERAS_INSTALL

            for form in ("unrolled", "fused"):
                if form == "fused" and not backends.installed("tf_keras"):
                    print(f"skipping the fused TFLite graph; to measure it: {TF_KERAS_INSTALL}", file=sys.stderr)
                    continue
                print(f"converting and loading the {form} TFLite graph", file=sys.stderr)
                copy = other_form_bundle(folder, workdir, form)
                for graph in FORMS[form]:
                    for precision in bundle.PRECISIONS:
                        add_runtime(*open_runtime_path(stack, copy, "tflite", graph, precision, texts, form=form))
        keras_call = None
        if (folder / "model.keras").is_file() and backends.installed("keras"):
            print("loading Keras", file=sys.stderr)
            keras_path, keras_predict, keras_call = open_keras(folder, texts)
            add({**keras_path, "backend": "keras-predict"}, keras_predict, KERAS_REVIEWS_PER_BLOCK)
        print(f"measuring latency: {len(calls)} paths, {ROUNDS} rounds, round-robin", file=sys.stderr)
        latencies = interleaved_latency(calls, buckets)
        for path in results["paths"]:
            path["latency"] = latencies[path_name(path)]
        best = fastest_path(results)
        print(f"measuring where {best}'s time goes", file=sys.stderr)
        results["best_path_breakdown"] = {"path": best, **time_breakdown(classifiers[best], buckets[median_tokens])}
        if keras_call is not None:
            # Eager calls take seconds each (recurrent dropout keeps a Python-level loop): a few, once.
            print("measuring Keras called eagerly", file=sys.stderr)
            short = {target: reviews[:3] for target, reviews in buckets.items()}
            (latency,) = interleaved_latency({"keras-call": (keras_call, 3)}, short, rounds=1).values()
            results["paths"].append({**keras_path, "backend": "keras-call", "latency": latency})
    print("measuring cold starts", file=sys.stderr)
    results["cold_start"] = cold_starts(folder)
    results["loading"] = loading_costs(folder, buckets[median_tokens][0])
    results["cpu_peak_gflops_1_thread"] = cpu_peak_gflops()
    results["flops_per_median_review"] = flops_per_review(config, median_tokens)
    return results


def path_name(path: dict) -> str:
    if path["backend"].startswith("keras"):
        return path["backend"]
    name = f"{path['backend']}-{path['graph']}-{path['precision']}"
    if path.get("form") in ("unrolled", "fused"):
        name += f"-{path['form']}"
    if path.get("xnnpack") is False:
        name += "-no-xnnpack"
    return name


def fastest_path(results: dict) -> str:
    """The runtime path with the lowest p50 latency for a median review."""
    median = str(results["median_test_review_tokens"])
    runtime_paths = [path for path in results["paths"] if not path["backend"].startswith("keras")]
    return path_name(min(runtime_paths, key=lambda path: path["latency"][median]["p50_ms"]))


def summary(results: dict) -> dict:
    """The issue's targets, computed from the measured figures."""
    paths = {path_name(path): path for path in results["paths"]}
    median = str(results["median_test_review_tokens"])
    p50 = {name: path["latency"][median]["p50_ms"] for name, path in paths.items()}
    best = fastest_path(results)
    backend, precision = paths[best]["backend"], paths[best]["precision"]
    full = f"{backend}-full-{precision}" + ("-no-xnnpack" if paths[best].get("xnnpack") is False else "")
    out = {"best_path": best, "median_tokens": int(median), "best_p50_ms": p50[best]}
    if "keras-predict" in p50:
        out["keras_predict_p50_ms"] = p50["keras-predict"]
        out["speedup_vs_keras_predict"] = p50["keras-predict"] / p50[best]
        by_round = zip(*(paths[name]["latency"][median]["round_p50_ms"] for name in ("keras-predict", best)))
        out["speedup_vs_keras_predict_by_round"] = [keras / own for keras, own in by_round]
    if full in p50 and full != best:
        out["speedup_vs_same_backend_full"] = p50[full] / p50[best]
    latency = paths[best]["latency"]
    out["p50_50_tokens_over_500_tokens"] = latency["50"]["p50_ms"] / latency["500"]["p50_ms"]
    cold = {entry["name"]: entry for entry in results["cold_start"]}
    if "keras load + predict" in cold:  # every runtime.predict choice, not only the fastest: memory differs
        keras_cold = cold["keras load + predict"]
        out["cold_start_ratios"] = {
            name.removeprefix("runtime.predict "): {
                "time": cold[name]["seconds"] / keras_cold["seconds"],
                "memory": cold[name]["peak_mib"] / keras_cold["peak_mib"],
            }
            for name in cold
            if name.startswith("runtime.predict")
        }
    achieved = results["flops_per_median_review"] / (p50[best] / 1e3) / 1e9
    out["best_path_gflops"] = achieved
    out["fraction_of_cpu_peak"] = achieved / results["cpu_peak_gflops_1_thread"]
    return out


def render_markdown(results: dict) -> str:
    """BENCHMARKS.md, from the JSON a run wrote: never typed by hand."""
    machine_info = results["machine"]
    paths = results["paths"]
    buckets = list(paths[0]["latency"])
    keras = next((path for path in paths if path["backend"] == "keras-predict"), None)
    versions = ", ".join(f"{name} {version}" for name, version in machine_info["versions"].items())
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `python -m benchmarks.bench` on {machine_info['date']}: {machine_info['cpu']}, "
        f"{machine_info['cores']} cores, {machine_info['system']}; {versions}.",
        "Regenerate with the commands at the top of `benchmarks/bench.py`. Real test reviews; one review per call, "
        "tokenization included; ratios are Keras `model.predict` time over the path's time."
        + (
            f" Latency is measured round-robin: {results['rounds']} rounds, each timing every path on every length "
            "in turn, a short block of reviews each."
            if "rounds" in results
            else ""
        ),
        "",
        "## Latency, one review, one thread (milliseconds, p50 / p99, and speed-up over Keras `model.predict`)",
        "",
        "| path | "
        + " | ".join(
            f"{b} tokens" + (" (median)" if b == str(results["median_test_review_tokens"]) else "") for b in buckets
        )
        + " |",
        "|---|" + "---|" * len(buckets),
    ]
    for path in paths:
        cells = []
        for bucket in buckets:
            figure = path["latency"][bucket]
            ratio = f" ({keras['latency'][bucket]['p50_ms'] / figure['p50_ms']:,.0f}x)" if keras else ""
            cells.append(f"{figure['p50_ms']:.3f} / {figure['p99_ms']:.3f}{ratio}")
        lines.append(f"| {path_name(path)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Throughput (reviews per second, 1,000 real reviews) and artifact size",
        "",
        "| path | 1 thread | 2 threads | artifact |",
        "|---|---|---|---|",
    ]
    for path in paths:
        throughput = path["throughput"]
        two = throughput.get("2")
        lines.append(
            f"| {path_name(path)} | {throughput['1']:,.0f} | {'-' if two is None else f'{two:,.0f}'} | "
            f"{path['artifact_bytes'] / 2**20:.2f} MiB |"
        )
    if keras:
        lines += [
            "",
            "Keras throughput is `model.predict` on the 1,000 reviews at batch 256. Every Keras figure but the "
            "cold start ran with TensorFlow's intra- and inter-op thread pools set to "
            f"{results['keras_threads']} (`tensorflow_on_one_thread` in `benchmarks/bench.py`), like the runtime's one thread.",
        ]
    lines += [
        "",
        "## Cold start: a new process to its first answer",
        "",
        "| process | seconds (median of 3) | peak memory |",
        "|---|---|---|",
    ]
    for entry in results["cold_start"]:
        lines.append(f"| {entry['name']} | {entry['seconds']:.3f} | {entry['peak_mib']:.0f} MiB |")
    loading = results["loading"]
    lines += [
        "",
        "Loading costs inside that start (best of 20): "
        + ", ".join(f"{name.removesuffix('_ms').replace('_', ' ')} {value:.2f} ms" for name, value in loading.items())
        + ".",
        "",
    ]
    out = summary(results)
    lines += [
        "## Against the targets",
        "",
        f"- Best path for a median review ({out['median_tokens']} tokens): **{out['best_path']}**, "
        f"p50 {out['best_p50_ms']:.3f} ms.",
    ]
    if "speedup_vs_keras_predict" in out:
        by_round = out["speedup_vs_keras_predict_by_round"]
        lines.append(
            f"- Speed-up over Keras `model.predict`: **{out['speedup_vs_keras_predict']:,.0f}x** "
            f"(target >= {KERAS_SPEEDUP_TARGET}x). Round by round (the p50 of each path in each of the "
            f"{len(by_round)} rounds): {min(by_round):,.0f}x to {max(by_round):,.0f}x, above the target in "
            f"{sum(ratio >= KERAS_SPEEDUP_TARGET for ratio in by_round)} of {len(by_round)}."
        )
    breakdown = results.get("best_path_breakdown")
    if breakdown:
        whole = breakdown["classify_ms"]
        line = (
            f"- Where {breakdown['path']}'s time goes for a median review (p50 of its own {results['rounds']} rounds "
            f"round-robin, after the table; the machine's speed may differ, so compare shares): tokenizing "
            f"{breakdown['tokenize_ms']:.3f} ms (**{breakdown['tokenize_ms'] / whole * 100:.0f} %**), the model with the ids "
            f"ready {breakdown['model_ms']:.3f} ms (**{breakdown['model_ms'] / whole * 100:.0f} %**), the whole call "
            f"{whole:.3f} ms."
        )
        if "keras_predict_p50_ms" in out:
            needed = out["keras_predict_p50_ms"] / KERAS_SPEEDUP_TARGET
            line += (
                f" {KERAS_SPEEDUP_TARGET}x over Keras needs the whole call at {needed:.3f} ms, "
                f"**{needed / out['best_p50_ms'] * 100:.0f} %** of its p50 in the table."
            )
        lines.append(line)
    if "speedup_vs_same_backend_full" in out:
        lines.append(
            f"- Speed-up over the same backend's full 500-step graph: "
            f"**{out['speedup_vs_same_backend_full']:.2f}x** (target >= 2x)."
        )
    lines.append(
        f"- A 50-token review costs **{out['p50_50_tokens_over_500_tokens'] * 100:.0f} %** of a 500-token one "
        "(target <= 25 %)."
    )
    if "cold_start_ratios" in out:
        each = "; ".join(
            f"{name} **1/{1 / ratio['time']:.0f}** and **1/{1 / ratio['memory']:.0f}**"
            for name, ratio in out["cold_start_ratios"].items()
        )
        lines.append(
            f"- Cold start of `runtime.predict` against TensorFlow's, time (target <= 1/20) and peak memory "
            f"(target <= 1/10): {each}."
        )
    lines.append(
        f"- Arithmetic: {results['flops_per_median_review'] / 1e6:.1f} MFLOP per median review; the best path "
        f"runs it at {out['best_path_gflops']:.1f} GFLOP/s, **{out['fraction_of_cpu_peak'] * 100:.0f} %** of "
        f"this CPU's one-thread float32 matrix-multiply rate ({results['cpu_peak_gflops_1_thread']:.0f} GFLOP/s, "
        "numpy). One review is a chain of 100-wide matrix-vector products, each waiting for the last, "
        "so it cannot use the CPU the way a large matrix product does."
    )
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, report: str) -> None:
    """Write the report to `path`, keeping the marked sections other harnesses wrote there (after it)."""
    kept = [match.group(0) for match in SECTION.finditer(path.read_text())] if path.is_file() else []
    path.write_text(report + "".join("\n" + section.rstrip("\n") + "\n" for section in kept))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=bundle.DEFAULT_BUNDLE)
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="aclImdb archive or folder for real reviews (default: $IMDB_DATA)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON (default: %(default)s)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="render BENCHMARKS.md from a results file and exit")
    parser.add_argument(
        "--markdown",
        type=Path,
        nargs="?",
        const=MARKDOWN,
        metavar="PATH",
        help=f"write the report into PATH (default {MARKDOWN.name}), keeping other harnesses' "
        "marked sections, instead of printing it",
    )
    args = parser.parse_args(argv)

    def report(results: dict) -> None:
        if args.markdown:
            write_markdown(args.markdown, render_markdown(results))
        else:
            print(render_markdown(results), end="")

    if args.render:
        report(json.loads(args.render.read_text()))
        return 0
    try:
        results = run(args.model, args.data)
    except (bundle.BundleError, backends.BackendError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_json(args.output, results)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
