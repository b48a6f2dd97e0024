"""Prove that the per-step artifacts compute the Keras model's opinion after every token.

The Keras model rebuilt with return_sequences=True reads each padded test review and answers after
every step; a per-step artifact ("steps" graph), run by `runtime.explain` as a device runs it (from
the cached padding state, the review's own tokens only), must give the answers of the review's
own steps, which are Keras' last len(ids). Fails, naming every artifact and figure that misses, when
  - a float32 per-step artifact differs from Keras by more than 2e-5 at any step of any review
    (on 1,000 reviews both backends stay within 1e-5, the issue's figure, which the tests pin; over
    all 25,000 and their 5.4 million steps float32 rounding reaches 1.2e-5 on TFLite, as its cached
    graph's last step reaches 1.1e-5 against Keras, which classify's parity allows with 1e-4);
  - an int8 one changes Keras' label at more than 1 % of the steps, or more on few reviews: the steps
    of one review rise and fall together, so the share of steps changed is weighed as a share of
    the reviews (n = reviews) against export.parity.allowed_disagreements(n);
  - the last step of a per-step artifact differs from the cached graph of its backend and precision,
    whose answer is classify's (explain ends exactly there), by more than 1e-5 (float32) or 1e-3
    (int8: a cached graph of another form, such as TFLite's fused LSTM, quantises its own way).
Part of every export and of `python -m export.parity` (through export.parity.check_reviews), which
record the figures with the artifact's sha256 in the manifest's "parity" entry, as for the others.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from runtime import SentimentClassifier, backends, bundle
from runtime.classifier import UnverifiedArtifactWarning
from runtime.explain import StepModel
from export import parity

STEP_ATOL = 2e-5
LAST_STEP_ATOL = {"float32": 1e-5, "int8": 1e-3}
KERAS_CHUNK = 500  # reviews per Keras call: 500 x 500 steps x labels floats at a time


def keras_steps(trained, config, tokenizer, texts):
    """Keras' probabilities after every step of each padded review, a chunk of reviews at a time."""
    from training.model import build_inference_model

    model = build_inference_model(trained, config, batch_size=None, return_sequences=True)
    for first in range(0, len(texts), KERAS_CHUNK):
        yield from model.predict(tokenizer.encode(texts[first:first + KERAS_CHUNK]), batch_size=250, verbose=0)


def run_step_parity(folder: Path, trained, texts, keys: list[str], record: bool = True) -> dict:
    """Per-step parity of the named artifacts; with `record`, written into the manifest's "parity" entry."""
    manifest = bundle.read_manifest(folder)
    config = bundle.model_config(manifest)
    loaded = {}
    for key in keys:
        artifact = manifest["artifacts"][key]
        backend, precision = artifact["format"], artifact["precision"]
        if backend not in backends.available_backends():
            continue
        with warnings.catch_warnings():  # proving the artifacts is what this is for
            warnings.simplefilter("ignore", UnverifiedArtifactWarning)
            classifier = SentimentClassifier.from_bundle(folder, backend, precision, "cached", allow_unverified=True)
            loaded[key] = (classifier, StepModel.load(classifier))
    if not loaded:
        return {}
    tokenizer = next(iter(loaded.values()))[0].tokenizer
    figures = {key: {"steps": 0, "agree": 0, "max_abs_diff": 0.0, "last": 0.0, "seconds": 0.0} for key in loaded}
    from export.common import Stage

    stage = Stage(f"per-step parity: Keras and {', '.join(loaded)}", len(texts))
    for done, (text, expected) in enumerate(zip(texts, keras_steps(trained, config, tokenizer, texts)), start=1):
        if done % 100 == 0 or done == len(texts):
            stage.update(done)
        ids = tokenizer.token_ids(text)
        expected = expected[-len(ids):]
        for key, (classifier, steps) in loaded.items():
            started = time.perf_counter()
            rows = steps.probabilities_of_ids(ids)
            figure = figures[key]
            figure["seconds"] += time.perf_counter() - started
            figure["steps"] += len(ids)
            figure["agree"] += int((rows.argmax(1) == expected.argmax(1)).sum())
            figure["max_abs_diff"] = max(figure["max_abs_diff"], float(np.abs(rows - expected).max()))
            figure["last"] = max(figure["last"], float(np.abs(rows[-1] - classifier.probabilities_of_ids(ids)).max()))
    results = {}
    for key, figure in figures.items():
        loaded[key][0].close()
        precision = manifest["artifacts"][key]["precision"]
        result = {"reviews": len(texts), "steps": figure["steps"], "max_abs_diff": figure["max_abs_diff"],
                  "step_label_agreement": figure["agree"] / figure["steps"],
                  "max_abs_diff_last_step_vs_cached": figure["last"], "seconds": round(figure["seconds"], 2),
                  "sha256": manifest["artifacts"][key]["sha256"], "failures": []}
        if precision == "float32" and result["max_abs_diff"] > STEP_ATOL:
            result["failures"].append(f"max step diff {result['max_abs_diff']:.2e} vs atol {STEP_ATOL:.0e}")
        if precision == "int8":
            # A review's steps are not independent samples: count the share changed in reviews.
            share = 1 - result["step_label_agreement"]
            allowed = parity.allowed_disagreements(len(texts)) / len(texts)
            result["allowed_step_disagreement"] = allowed
            if share > allowed + 1e-12:
                result["failures"].append(f"step label agreement {result['step_label_agreement']:.4f}: "
                                          f"{share:.2%} of steps differ from Keras, at most {allowed:.2%} may "
                                          f"on {len(texts):,} reviews")
        if result["max_abs_diff_last_step_vs_cached"] > LAST_STEP_ATOL[precision]:
            result["failures"].append(f"last step vs the cached graph {result['max_abs_diff_last_step_vs_cached']:.2e}"
                                      f" vs atol {LAST_STEP_ATOL[precision]:.0e}")
        result["passed"] = not result["failures"]
        results[key] = result
    if record:
        parity.record_parity(folder, results)
    return results


def format_table(results: dict, artifacts: dict) -> str:
    """The per-step figures as a Markdown table."""
    lines = ["| per-step artifact | size | reviews | steps | max abs diff vs Keras, any step | step labels = Keras "
             "| last step vs cached graph | passed |", "|---|---|---|---|---|---|---|---|"]
    for key, result in results.items():
        lines.append(f"| {key} | {artifacts[key]['bytes'] / 2**20:.2f} MiB | {result['reviews']:,} | "
                     f"{result['steps']:,} | {result['max_abs_diff']:.1e} | {result['step_label_agreement'] * 100:.2f} % "
                     f"| {result['max_abs_diff_last_step_vs_cached']:.1e} | {'yes' if result['passed'] else 'NO'} |")
    return "\n".join(lines)


def step_keys(manifest: dict) -> list[str]:
    return [key for key, record in manifest["artifacts"].items() if record.get("graph") == bundle.STEPS_GRAPH]


def check_reviews(folder: Path, trained, reviews, keys: list[str] | None = None, record: bool = True) -> dict:
    """Per-step parity on these reviews (of every per-step artifact, or the named ones); print the
    table; return the results, failures included (export.parity.check_reviews raises on them)."""
    keys = step_keys(bundle.read_manifest(folder)) if keys is None else keys
    results = run_step_parity(folder, trained, reviews.texts, keys, record)
    if results:
        print(format_table(results, bundle.read_manifest(folder)["artifacts"]))
    return results
