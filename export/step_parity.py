"""Prove that the per-step artifacts compute the Keras model's opinion after every token.

The Keras model rebuilt with return_sequences=True reads each padded test review and answers after
every step; a per-step artifact ("steps" graph), run by `runtime.explain` as a device runs it (from
the cached padding state, the review's own tokens only), must give the answers of the review's
own steps, which are Keras' last len(ids). Fails, naming every artifact and figure that misses, when
  - a float32 per-step artifact differs from Keras by more than 1e-4 at any step of any review,
    the bound classify's parity sets on a float32 answer (over all 25,000 test reviews and their
    5.4 million steps, float32 rounding reaches 1.2e-5 to 2.3e-5 on TFLite, depending on the
    model's weights: the manifest's parity entry has the shipped model's figure);
  - an int8 one changes Keras' label at more than 1 % of the steps, or more on few reviews: the steps
    of one review rise and fall together, so the share of steps changed is weighed as a share of
    the reviews (n = reviews) against export.config.allowed_disagreements(n);
  - the last step of a per-step artifact differs from the cached graph of its backend and precision,
    whose answer is classify's (explain ends exactly there), by more than 1e-5 (float32) or 1e-3
    (int8: a cached graph of another form, such as TFLite's fused LSTM, quantises its own way).
Part of every export and of `python -m export.parity` (through export.parity.check_reviews), which
record the figures with the artifact's sha256 in the manifest's "parity" entry, as for the others.
The loop over reviews and artifacts is export.validate's; this module is the comparison and table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from export import config, validate
from export.config import LAST_STEP_ATOL, STEP_ATOL
from runtime import bundle

Allowance = Callable[[float], int]  # texts -> labels that may differ (export.config.allowed_disagreements)


def compare_steps(
    keras_steps: list,
    answers: tuple[list, list],
    precision: str,
    allowed_disagreements: Allowance = config.allowed_disagreements,
) -> dict:
    """The per-step figures of one artifact and the failures among them. keras_steps: Keras'
    (steps, labels) answers per review; answers: the artifact's, and its cached graph's last ones."""
    every, last = answers
    agree = sum(int((rows.argmax(1) == expected.argmax(1)).sum()) for rows, expected in zip(every, keras_steps))
    steps = sum(len(rows) for rows in every)
    result = {
        "reviews": len(every),
        "steps": steps,
        "max_abs_diff": max(float(np.abs(rows - expected).max()) for rows, expected in zip(every, keras_steps)),
        "step_label_agreement": agree / steps,
        "max_abs_diff_last_step_vs_cached": max(
            float(np.abs(rows[-1] - cached).max()) for rows, cached in zip(every, last)
        ),
        "failures": [],
    }
    if precision == "float32" and result["max_abs_diff"] > STEP_ATOL:
        result["failures"].append(f"max step diff {result['max_abs_diff']:.2e} vs atol {STEP_ATOL:.0e}")
    if precision == "int8":
        # A review's steps are not independent samples: count the share changed in reviews.
        share = 1 - result["step_label_agreement"]
        allowed = allowed_disagreements(len(every)) / len(every)
        result["allowed_step_disagreement"] = allowed
        if share > allowed + 1e-12:
            result["failures"].append(
                f"step label agreement {result['step_label_agreement']:.4f}: "
                f"{share:.2%} of steps differ from Keras, at most {allowed:.2%} may "
                f"on {len(every):,} reviews"
            )
    if result["max_abs_diff_last_step_vs_cached"] > LAST_STEP_ATOL[precision]:
        result["failures"].append(
            f"last step vs the cached graph {result['max_abs_diff_last_step_vs_cached']:.2e}"
            f" vs atol {LAST_STEP_ATOL[precision]:.0e}"
        )
    return result


def run_step_parity(
    folder: Path,
    trained,
    texts,
    keys: list[str],
    record: bool = True,
    allowed_disagreements: Allowance = config.allowed_disagreements,
) -> dict:
    """Per-step parity of the named artifacts; with `record`, written into the manifest's "parity" entry."""

    def compare(keras_steps, answers, labels, precision, reference) -> dict:
        return compare_steps(keras_steps, answers, precision, allowed_disagreements)

    return validate.check_artifacts(folder, trained, texts, None, keys, compare, record)


def format_table(results: Mapping, artifacts: Mapping) -> str:
    """The per-step figures as a Markdown table; artifacts: the manifest's artifact records."""
    lines = [
        "| per-step artifact | size | reviews | steps | max abs diff vs Keras, any step | step labels = Keras "
        "| last step vs cached graph | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, result in results.items():
        figures = result.figures
        lines.append(
            f"| {key} | {artifacts[key].bytes / 2**20:.2f} MiB | {figures['reviews']:,} | "
            f"{figures['steps']:,} | {figures['max_abs_diff']:.1e} | {figures['step_label_agreement'] * 100:.2f} % "
            f"| {figures['max_abs_diff_last_step_vs_cached']:.1e} | {'yes' if result.passed else 'NO'} |"
        )
    return "\n".join(lines)


def step_keys(manifest: bundle.Manifest) -> list[str]:
    return config.keys_of(manifest.artifacts, (bundle.STEPS_GRAPH,))


def check_reviews(
    folder: Path,
    trained,
    reviews,
    keys: list[str] | None = None,
    record: bool = True,
    allowed_disagreements: Allowance = config.allowed_disagreements,
) -> dict:
    """Per-step parity on these reviews (of every per-step artifact, or the named ones); print the
    table; return the results, failures included (export.parity.check_reviews raises on them)."""
    keys = step_keys(bundle.Manifest.read(folder)) if keys is None else keys
    results = run_step_parity(folder, trained, reviews.texts, keys, record, allowed_disagreements)
    if results:
        print(format_table(results, bundle.Manifest.read(folder).artifacts))
    return results
