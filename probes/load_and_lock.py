"""What the bundle change costs at load time and per review: `python -m probes.load_and_lock`.

From the repository root (needs git, the dataset and both interpreters):

    python -m probes.load_and_lock --data ../shared/data/aclImdb_labeled.tar.gz

In one run, side by side, it measures:

1. Cold load: `SentimentClassifier.from_bundle(models/imdb-lstm, backend, precision)` (cached graph)
   by the runtime before the change (`git archive <before> runtime`, default a97845f: it hashed each
   file, then had the interpreter load it by path) and by the working tree's runtime (it reads each
   file once and loads the interpreter from those bytes, with the parity and fingerprint checks).
   Both load the same, current bundle. Each sample is a fresh process that imports `runtime`, then
   times the from_bundle call and the first classify (the old TFLite code allocated its tensors on
   the first call, the new one at load, so the sum is the fair comparison). A second kind of sample
   imports the interpreter module (LiteRT or ONNX Runtime) before timing, so that its import, the
   same for both, does not dilute the difference. Before and after alternate, for every backend and
   precision, round after round.
2. The classifier's lock: `TFLiteModel.run` takes a lock around the interpreter call; the same
   classifier is timed on real test reviews of the median length with the lock (as shipped) and
   without it (the model's `_run` bound in place of `run`), in short interleaved blocks over many
   rounds, on one thread. ONNX Runtime sessions are thread-safe and take no lock.

It writes probes/load_and_lock.json and rewrites only its own section of BENCHMARKS.md
(between `<!-- begin:load-and-lock -->` and `<!-- end:load-and-lock -->`, added at the end if
missing). Timings are never asserted anywhere: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench import machine
from benchmarks.sections import write_section
from runtime import SentimentClassifier, backends, bundle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "load_and_lock.json"
MARKDOWN = ROOT / "BENCHMARKS.md"
SECTION = "load-and-lock"
BEFORE = "a97845f"
ROUNDS = 15
LOCK_ROUNDS = 600
LOCK_BLOCK = 8  # calls in a row per variant and round
LOCK_REVIEWS = 24  # real test reviews of exactly the median length, cycled through
EXAMPLE = "A wonderful film with a brilliant cast. I loved every minute of it."

# One sample, in a fresh interpreter whose `runtime` is the one on PYTHONPATH (checked by its file).
_SAMPLE = """
import importlib, json, sys, time
started = time.perf_counter()
import runtime
from runtime import SentimentClassifier, backends
imported = time.perf_counter() - started
folder, backend, precision, preimport, example = sys.argv[1:6]
if preimport == "1":  # the interpreter's own module, the same for both runtimes
    importlib.import_module(backends.tflite_module_name() if backend == "tflite" else "onnxruntime")
started = time.perf_counter()
classifier = SentimentClassifier.from_bundle(folder, backend, precision)
load = time.perf_counter() - started
started = time.perf_counter()
label = classifier.classify(example).label
first = time.perf_counter() - started
print(json.dumps({"runtime": runtime.__file__, "import_s": imported, "load_s": load, "first_classify_s": first,
                  "label": label}))
"""


def sample_load(runtime_root: Path, folder: Path, backend: str, precision: str, preimport: bool, workdir: Path) -> dict:
    """One cold load in a fresh process whose `runtime` package comes from `runtime_root`."""
    env = {**os.environ, "PYTHONPATH": str(runtime_root)}
    # -P and a neutral working folder: nothing but PYTHONPATH may put a `runtime` on the path.
    done = subprocess.run(
        [sys.executable, "-P", "-c", _SAMPLE, str(folder), backend, precision, "1" if preimport else "0", EXAMPLE],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{runtime_root} {backend} {precision}: {done.stderr.strip()[-2000:]}")
    sample = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(sample["runtime"]).resolve().is_relative_to(runtime_root.resolve()):
        raise RuntimeError(f"the sample imported {sample['runtime']}, not the runtime under {runtime_root}")
    return sample


def cold_loads(folder: Path, before_root: Path, rounds: int, workdir: Path) -> list[dict]:
    """Medians per backend, precision and kind of sample, before and after, alternating."""
    roots = {"before": before_root, "after": ROOT}
    cases = [
        (backend, precision, preimport)
        for preimport in (False, True)
        for backend in backends.available_backends()
        for precision in bundle.PRECISIONS
    ]
    samples = {(case, version): [] for case in cases for version in roots}
    for round_index in range(rounds):
        print(f"cold loads: round {round_index + 1} of {rounds}", file=sys.stderr)
        for case in cases:
            order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
            for version in order:
                samples[case, version].append(sample_load(roots[version], folder, *case, workdir))
    figures = []
    for backend, precision, preimport in cases:
        entry = {
            "backend": backend,
            "precision": precision,
            "graph": "cached",
            "interpreter_module_imported_first": preimport,
            "samples": rounds,
        }
        for version in roots:
            runs = samples[(backend, precision, preimport), version]
            if {run["label"] for run in runs} != {"positive"}:
                raise RuntimeError(f"{version} {backend} {precision}: the example was not classified positive")
            entry[version] = {
                "load_ms": statistics.median(run["load_s"] for run in runs) * 1e3,
                "first_classify_ms": statistics.median(run["first_classify_s"] for run in runs) * 1e3,
                "load_and_first_classify_ms": statistics.median(run["load_s"] + run["first_classify_s"] for run in runs)
                * 1e3,
                "import_runtime_ms": statistics.median(run["import_s"] for run in runs) * 1e3,
                "load_ms_all": [run["load_s"] * 1e3 for run in runs],
            }
        for figure in ("load_ms", "first_classify_ms", "load_and_first_classify_ms"):
            entry[f"{figure.removesuffix('_ms')}_after_over_before"] = entry["after"][figure] / entry["before"][figure]
        figures.append(entry)
    return figures


def median_length_reviews(folder: Path, data_source: str | None) -> tuple[int, list[list[int]]]:
    """The median test review's token count and the token ids of real test reviews of exactly it."""
    from runtime.text import Tokenizer
    from training.data import load_imdb

    manifest = bundle.Manifest.read(folder)
    tokenizer = Tokenizer.parse(
        bundle.read_file(folder, manifest.tokenizer.vocabulary), manifest.model_config.sequence_length
    )
    ids = [tokenizer.token_ids(text) for text in load_imdb(data_source).test.texts]
    median = int(np.median([len(review) for review in ids]))
    return median, [review for review in ids if len(review) == median][:LOCK_REVIEWS]


def lock_cost(folder: Path, precision: str, reviews: list[list[int]], rounds: int) -> dict:
    """p50 of `probabilities_of_ids` with the interpreter's lock and without, interleaved."""
    classifier = SentimentClassifier.from_bundle(folder, "tflite", precision, "cached", threads=1)
    model = classifier._model
    if not hasattr(model, "_lock"):
        raise RuntimeError("this TFLiteModel takes no lock: nothing to measure")

    def locked(on: bool) -> None:
        if on:
            model.__dict__.pop("run", None)  # the class's run: `with self._lock: return self._run(feeds)`
        else:
            model.run = model._run  # the same interpreter call, without the lock

    timings = {"with_lock": [], "without_lock": []}
    per_round = {"with_lock": [], "without_lock": []}
    for on in (True, False):  # warm-up: first-call allocations are not latency
        locked(on)
        for review in reviews:
            classifier.probabilities_of_ids(review)
    calls = 0
    for round_index in range(rounds):
        order = (True, False) if round_index % 2 == 0 else (False, True)
        for on in order:
            locked(on)
            name = "with_lock" if on else "without_lock"
            block = []
            for _ in range(LOCK_BLOCK):
                review = reviews[calls % len(reviews)]
                calls += 1
                started = time.perf_counter_ns()
                classifier.probabilities_of_ids(review)
                block.append(time.perf_counter_ns() - started)
            timings[name] += block
            per_round[name].append(statistics.median(block))
    locked(True)
    classifier.close()
    with_lock = float(np.percentile(timings["with_lock"], 50)) / 1e3
    without_lock = float(np.percentile(timings["without_lock"], 50)) / 1e3
    paired = [(a - b) / 1e3 for a, b in zip(per_round["with_lock"], per_round["without_lock"])]
    return {
        "backend": "tflite",
        "graph": "cached",
        "precision": precision,
        "threads": 1,
        "rounds": rounds,
        "calls_each": len(timings["with_lock"]),
        "with_lock_p50_us": with_lock,
        "without_lock_p50_us": without_lock,
        "difference_us": with_lock - without_lock,
        "difference_percent": (with_lock - without_lock) / without_lock * 100,
        "round_difference_median_us": statistics.median(paired),
        "round_difference_p25_us": float(np.percentile(paired, 25)),
        "round_difference_p75_us": float(np.percentile(paired, 75)),
    }


def bare_lock_ns(repeats: int = 200_000) -> float:
    """An uncontended `with threading.Lock():` alone, in ns, minus the empty loop: the lock's floor."""
    import threading

    lock = threading.Lock()
    best_locked = best_empty = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(repeats):
            with lock:
                pass
        best_locked = min(best_locked, time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        for _ in range(repeats):
            pass
        best_empty = min(best_empty, time.perf_counter_ns() - started)
    return (best_locked - best_empty) / repeats


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def run(folder: Path, data_source: str | None, before: str, rounds: int, lock_rounds: int) -> dict:
    results = {
        "machine": machine(),
        "bundle": str(folder.resolve().relative_to(ROOT) if folder.resolve().is_relative_to(ROOT) else folder),
        "bundle_manifest_sha256": bundle.sha256_file(folder / bundle.MANIFEST_NAME),
        "before": git("rev-parse", "--short", before),
        "after": f"working tree at {git('rev-parse', '--short', 'HEAD')}"
        + (" (runtime/ with uncommitted changes)" if git("status", "--porcelain", "runtime") else ""),
    }
    with tempfile.TemporaryDirectory() as temporary:
        before_root, workdir = Path(temporary) / "before", Path(temporary) / "work"
        before_root.mkdir()
        workdir.mkdir()
        archive = subprocess.run(
            ["git", "archive", before, "runtime"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(before_root)], input=archive, check=True)
        results["cold_load"] = cold_loads(folder, before_root, rounds, workdir)
    if "tflite" in backends.available_backends():
        print("lock: reading the test reviews", file=sys.stderr)
        median, reviews = median_length_reviews(folder, data_source)
        results["median_test_review_tokens"] = median
        results["lock_reviews"] = len(reviews)
        results["lock"] = []
        results["bare_lock_acquire_release_ns"] = bare_lock_ns()
        for precision in bundle.PRECISIONS:
            print(f"lock: tflite cached {precision}, {lock_rounds} rounds", file=sys.stderr)
            results["lock"].append(lock_cost(folder, precision, reviews, lock_rounds))
    return results


def render_section(results: dict) -> str:
    """The BENCHMARKS.md section, from the JSON: never typed by hand."""
    m = results["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    lines = [
        f"<!-- begin:{SECTION} -->",
        "## Loading a bundle, before and after reading it once, and the classifier's lock",
        "",
        f"Produced by `python -m probes.load_and_lock` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
        f"{m['system']}; {versions}. Bundle `{results['bundle']}` (manifest sha256 "
        f"{results['bundle_manifest_sha256'][:12]}), loaded by two runtimes. Before: the runtime at {results['before']}, "
        f"which hashes each file, then has the interpreter load it by path. After: the {results['after']}, which reads "
        "each file once, checks it and loads the interpreter from those bytes.",
        "",
        "### Cold load, cached graph (milliseconds, median of fresh processes, before and after alternating)",
        "",
        "Each sample is a new process that imports `runtime`, then times `SentimentClassifier.from_bundle` and the "
        "first `classify`. The old TFLite code allocated its tensors on the first call, the new one at load: "
        "compare the sums. In the lower rows the process imported the interpreter's module (LiteRT, ONNX Runtime) "
        "before timing, which is the same for both.",
        "",
        "| backend | precision | interpreter imported first | from_bundle before | after | after/before "
        "| first classify before | after | load + first classify before | after | after/before |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in results["cold_load"]:
        before, after = entry["before"], entry["after"]
        lines.append(
            f"| {entry['backend']} | {entry['precision']} | {'yes' if entry['interpreter_module_imported_first'] else 'no'} "
            f"| {before['load_ms']:.1f} | {after['load_ms']:.1f} | {entry['load_after_over_before']:.2f} "
            f"| {before['first_classify_ms']:.2f} | {after['first_classify_ms']:.2f} "
            f"| {before['load_and_first_classify_ms']:.1f} | {after['load_and_first_classify_ms']:.1f} "
            f"| {entry['load_and_first_classify_after_over_before']:.2f} |"
        )
    samples = results["cold_load"][0]["samples"]
    lines += ["", f"{samples} samples per cell.", ""]
    if results.get("lock"):
        lock = results["lock"][0]
        lines += [
            "### The classifier's lock on one review (TFLite, cached graph, one thread)",
            "",
            f"`probabilities_of_ids` on real test reviews of the median length ({results['median_test_review_tokens']} "
            f"tokens; {results['lock_reviews']} reviews, cycled), with the lock `TFLiteModel.run` takes (as shipped) "
            f"and without it (the model's `_run` called directly): {lock['rounds']} rounds, each timing both in turn, "
            f"{lock['calls_each'] // lock['rounds']} calls in a row each. ONNX Runtime takes no lock. For scale, an "
            f"uncontended `with threading.Lock():` alone costs {results['bare_lock_acquire_release_ns']:.0f} ns here "
            "(best of 5 loops); a difference smaller than the noise between rounds is no measured cost.",
            "",
            "| precision | with lock, p50 | without, p50 | difference | difference, % "
            "| the rounds' differences (each round's block p50s): median [p25, p75] |",
            "|---|---|---|---|---|---|",
        ]
        for lock in results["lock"]:
            lines.append(
                f"| {lock['precision']} | {lock['with_lock_p50_us']:.1f} µs | {lock['without_lock_p50_us']:.1f} µs "
                f"| {lock['difference_us']:+.2f} µs | {lock['difference_percent']:+.2f} % "
                f"| {lock['round_difference_median_us']:+.2f} µs [{lock['round_difference_p25_us']:+.1f}, "
                f"{lock['round_difference_p75_us']:+.1f}] |"
            )
        lines.append("")
    lines.append(f"<!-- end:{SECTION} -->")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m probes.load_and_lock",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", type=Path, default=bundle.REPOSITORY_BUNDLE, help="bundle folder")
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="aclImdb archive or folder for the median-length reviews ($IMDB_DATA)",
    )
    parser.add_argument("--before", default=BEFORE, help="commit whose runtime/ is the 'before'")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="cold-load samples per cell")
    parser.add_argument("--lock-rounds", type=int, default=LOCK_ROUNDS, help="rounds of the lock measurement")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    parser.add_argument("--markdown", type=Path, default=MARKDOWN, help="file whose section is rewritten")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the section from a results file")
    args = parser.parse_args(argv)
    if args.render:
        write_section(args.markdown, SECTION, render_section(json.loads(args.render.read_text())))
        return 0
    results = run(args.model, args.data, args.before, args.rounds, args.lock_rounds)
    bundle.write_json(args.output, results)
    write_section(args.markdown, SECTION, render_section(results))
    print(render_section(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
