"""The benchmark's plumbing on a few reviews: it measures real runs and renders them; no figure
is asserted, because timings are not tests."""

import contextlib
import json

import pytest

# The benchmark converts graphs and measures Keras: it needs the training side, which runtime-only
# environments (CI's device jobs) do not install. Skip the whole module there.
pytest.importorskip("tensorflow", reason="the benchmark needs TensorFlow (the train extra)")

from benchmarks import bench  # noqa: E402
from runtime import backends, bundle  # noqa: E402
from runtime.text import Tokenizer  # noqa: E402


def test_measures_and_renders(bundle_dir, shared_test_reviews, tmp_path):
    tokenizer = Tokenizer.load(bundle_dir / "vocab.txt", 500)
    texts = shared_test_reviews.texts
    buckets = bench.pick_buckets(tokenizer, texts, median=173)
    assert all(abs(len(tokenizer.token_ids(t)) - 100) <= 5 for t in buckets[100])
    assert all(len(tokenizer.token_ids(t)) == 500 for t in buckets[500])
    buckets = {target: reviews[:2] for target, reviews in buckets.items()}
    backend = backends.available_backends()[0]
    with contextlib.ExitStack() as stack:
        opened = [
            bench.open_runtime_path(stack, bundle_dir, backend, graph, "int8", texts[:20])
            for graph in ("full", "cached")
        ]
        paths = [path for path, _ in opened]
        latencies = bench.interleaved_latency(
            {bench.path_name(path): (classifier.classify, 2) for path, classifier in opened}, buckets, rounds=2
        )
        breakdown = bench.time_breakdown(opened[1][1], buckets[173], rounds=2)
    for path in paths:
        path["latency"] = latencies[bench.path_name(path)]
        assert all(figure["calls"] == 2 * 2 for figure in path["latency"].values())
    assert set(breakdown) == {"tokenize_ms", "model_ms", "classify_ms"} and min(breakdown.values()) > 0
    results = {
        "machine": bench.machine(),
        "median_test_review_tokens": 173,
        "paths": paths,
        "rounds": 2,
        "best_path_breakdown": {"path": f"{backend}-cached-int8", **breakdown},
        "cold_start": bench.cold_starts(bundle_dir, repeats=1),
        "loading": bench.loading_costs(bundle_dir, texts[0], repeats=2),
        "cpu_peak_gflops_1_thread": bench.cpu_peak_gflops(),
        "flops_per_median_review": bench.flops_per_review(bundle.Manifest.read(bundle_dir).model_config, 173),
    }
    assert {entry["name"] for entry in results["cold_start"]} >= {
        "numpy import (floor)",
        f"{backend} interpreter loading the cached int8 model (floor)",
        f"runtime.predict {backend} int8",
    }
    assert all(entry["peak_mib"] > 0 for entry in results["cold_start"])
    text = bench.render_markdown(json.loads(json.dumps(results)))  # renders from JSON, as BENCHMARKS.md is
    assert f"| {backend}-cached-int8 |" in text and "## Against the targets" in text
    assert f"Where {backend}-cached-int8's time goes" in text
    assert results["machine"]["cpu"] in text and "round-robin: 2 rounds" in text


def test_round_robin_times_every_path_in_every_round():
    """Each round visits every path on every bucket, starting one path later each round."""
    seen = []
    calls = {name: (lambda text, name=name: seen.append((name, text)), 1) for name in ("a", "b", "c")}
    latencies = bench.interleaved_latency(calls, {25: ["short"], 500: ["long"]}, rounds=2)
    assert seen[3:] == [(n, "short") for n in "abc"] + [(n, "long") for n in "abc"] + [(n, "short") for n in "bca"] + [
        (n, "long") for n in "bca"
    ]  # after 3 warm-up calls
    assert {name: figures["500"]["calls"] for name, figures in latencies.items()} == {"a": 2, "b": 2, "c": 2}
    assert all(len(figures["25"]["round_p50_ms"]) == 2 for figures in latencies.values())


def test_round_robin_times_short_blocks_through_all_reviews():
    """Each round times a path on the next block of a bucket's reviews, so the rounds go through
    all of them, cycling."""
    seen = []
    calls = {"a": (lambda text: seen.append(("a", text)), 2), "b": (lambda text: seen.append(("b", text)), 1)}
    latencies = bench.interleaved_latency(calls, {100: ["r0", "r1", "r2"]}, rounds=2)
    assert seen[2:] == [("a", "r0"), ("a", "r1"), ("b", "r0"), ("b", "r1"), ("a", "r2"), ("a", "r0")]
    assert latencies["a"]["100"]["calls"] == 4 and len(latencies["b"]["100"]["round_p50_ms"]) == 2


def test_speed_up_by_round_pairs_the_rounds():
    """Each round's ratio divides Keras's p50 in that round by the best path's in the same round."""

    def path(backend, graph, round_p50_ms):
        latency = {
            str(bucket): {"p50_ms": sorted(round_p50_ms)[1], "round_p50_ms": round_p50_ms} for bucket in (50, 173, 500)
        }
        return {"backend": backend, "graph": graph, "precision": "int8", "latency": latency}

    results = {
        "median_test_review_tokens": 173,
        "cold_start": [],
        "flops_per_median_review": 1e6,
        "cpu_peak_gflops_1_thread": 10.0,
        "paths": [
            path("onnx", "cached", [0.5, 0.4, 1.0]),
            path("onnx", "full", [2.0, 2.0, 2.0]),
            path("keras-predict", "full", [100.0, 120.0, 150.0]),
        ],
    }
    out = bench.summary(results)
    assert out["best_path"] == "onnx-cached-int8"
    assert out["speedup_vs_keras_predict_by_round"] == [200.0, 300.0, 150.0]
    assert out["speedup_vs_keras_predict"] == 120.0 / 0.5


def test_tensorflow_runs_on_one_thread_for_the_comparison():
    import subprocess
    import sys

    code = (
        "from benchmarks.bench import tensorflow_on_one_thread as f; import tensorflow as tf; "
        "print(f(), tf.config.threading.get_inter_op_parallelism_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]


def test_flops_count_grows_with_length():
    from runtime.config import ModelConfig

    config = ModelConfig()
    assert bench.flops_per_review(config, 200) > 2 * bench.flops_per_review(config, 99)
    assert bench.flops_per_review(config, 1) == 2 * 4 * 100 * (128 + 100) + 2 * 100 * 2


@pytest.mark.parametrize("argv", [["--model", "/nonexistent"]])
def test_bad_bundle_is_a_clear_error(argv, capsys):
    assert bench.main(argv) == 1
    assert "no such model bundle folder" in capsys.readouterr().err
