"""Prove that every exported artifact computes what the Keras model computes: `python -m export.parity`.

Runs the trained Keras model and each device artifact (through `runtime`, the code a device
runs) on real test reviews tokenized by `runtime.text`, and reports per artifact the largest
probability difference, label agreement with Keras and test accuracy. The reviews are the
held-out test texts of the data the bundle was trained on, re-created from the manifest's record
of it (training.splits.recreate_test): other data than that is refused. Fails, naming every
artifact and figure that misses, when
  - a float32 artifact differs from Keras by more than 1e-4, or disagrees on a label where
    Keras' top two probabilities are not more than 2e-4 apart (with two labels: where Keras is
    not within 1e-4 of 0.5);
  - a float32 "cached" graph differs from the full graph of its backend by more than 1e-5;
  - an int8 artifact changes more labels than `allowed_disagreements(n)` of n texts (1 %, and
    more on few texts: what an artifact changing 0.9 % of labels stays within 95 % of the time),
    or loses more than 0.5 points of accuracy where a one-sided exact McNemar test on the texts
    it answers differently says the loss is real (p < 0.05). docs/export.md says why.
The per-step artifacts (explain's "steps" graph) are proven at every step by export.step_parity,
which `check_reviews` runs too. The loop over reviews and artifacts is export.validate's, the
tolerances are export.config's; this module is the comparison, the tables and the command.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Mapping

import numpy as np

from export import common, config, step_parity, validate

# The gate reads the tolerances and the int8 allowance through this module's names, so that
# setting one here (export.parity.FLOAT_ATOL = ...) changes what every check, exports included, allows.
from export.config import (
    CACHED_VS_FULL_ATOL,
    FLOAT_ATOL,
    INT8_MAX_ACCURACY_DROP,
    SIGNIFICANCE,
    ExportError,
    allowed_disagreements,
)
from export.validate import test_reviews
from runtime import bundle, cli


def accuracy_loss_p_value(lost: int, gained: int) -> float:
    """One-sided exact McNemar test: the chance of losing at least `lost` of the lost + gained texts
    the two models answer differently (one right, the other wrong) if int8 were as accurate."""
    from scipy.stats import binom

    return float(binom.sf(lost - 1, lost + gained, 0.5)) if lost else 1.0


def compare(keras_probs: np.ndarray, probs: np.ndarray, labels: np.ndarray, precision: str) -> dict:
    """The parity figures of one artifact and the failures among them."""
    keras_labels, labels_out = keras_probs.argmax(1), probs.argmax(1)
    disagree = keras_labels != labels_out
    keras_accuracy = float((keras_labels == labels).mean())
    result = {
        "reviews": int(len(labels)),
        "max_abs_diff": float(np.abs(keras_probs - probs).max()),
        "label_agreement": float(1.0 - disagree.mean()),
        "accuracy": float((labels_out == labels).mean()),
        "keras_accuracy": keras_accuracy,
        "failures": [],
    }
    if precision == "float32":
        if result["max_abs_diff"] > FLOAT_ATOL:
            result["failures"].append(f"max diff {result['max_abs_diff']:.2e} vs atol {FLOAT_ATOL:.0e}")
        # Where Keras' top two labels are within rounding of each other, either answer is right.
        top_two = np.sort(keras_probs, axis=1)[:, -2:]
        undecided = top_two[:, 1] - top_two[:, 0] <= 2 * FLOAT_ATOL
        if (disagree & ~undecided).any():
            result["failures"].append(f"{int((disagree & ~undecided).sum())} labels differ from Keras")
    else:
        changed, allowed = int(disagree.sum()), allowed_disagreements(len(labels))
        result.update(disagreements=changed, allowed_disagreements=allowed)
        if changed > allowed:
            result["failures"].append(
                f"label agreement {result['label_agreement']:.4f}: {changed} of {len(labels):,} "
                f"labels differ from Keras, at most {allowed} may"
            )
        # The texts one model answers right and the other wrong (McNemar's discordant pairs).
        keras_right, right = keras_labels == labels, labels_out == labels
        lost, gained = int((keras_right & ~right).sum()), int((~keras_right & right).sum())
        p_value = accuracy_loss_p_value(lost, gained)
        result.update(texts_lost=lost, texts_gained=gained, accuracy_loss_p_value=p_value)
        # Counted in texts, so that exactly the allowed drop (1 text in 200) is not failed by rounding.
        if lost - gained > round(INT8_MAX_ACCURACY_DROP * len(labels), 9) and p_value < SIGNIFICANCE:
            result["failures"].append(
                f"accuracy {result['accuracy']:.4f} loses more than {INT8_MAX_ACCURACY_DROP * 100:.1f} points on "
                f"Keras' {keras_accuracy:.4f} ({lost} texts lost, {gained} gained: McNemar p = {p_value:.3f} "
                f"< {SIGNIFICANCE})"
            )
    return result


def compare_artifact(
    keras_probs: np.ndarray, probs: np.ndarray, labels: np.ndarray, precision: str, full: np.ndarray | None
) -> dict:
    """`compare`, and for a cached graph whose full graph was checked too, how far apart they are."""
    result = compare(keras_probs, probs, labels, precision)
    if full is not None:
        result["max_abs_diff_vs_full"] = float(np.abs(probs - full).max())
        if precision == "float32" and result["max_abs_diff_vs_full"] > CACHED_VS_FULL_ATOL:
            result["failures"].append(
                f"max diff vs the full graph {result['max_abs_diff_vs_full']:.2e} vs atol {CACHED_VS_FULL_ATOL:.0e}"
            )
    return result


def run_parity(
    folder: Path, trained, texts, labels, keys: list[str] | None = None, record: bool = True
) -> dict[str, validate.ArtifactResult]:
    """Parity of every (or the named) artifact that classifies; with `record`, written into the
    manifest's "parity" entry."""
    keys = keys or config.keys_of(bundle.Manifest.read(folder).artifacts, config.CLASSIFYING_GRAPHS)
    return validate.check_artifacts(folder, trained, texts, labels, keys, compare_artifact, record)


def format_table(results: Mapping, artifacts: Mapping | None = None) -> str:
    """The parity figures as a Markdown table (printed by the commands, copied into the README), of
    fresh results (export.validate.ArtifactResult) or the manifest's records (ParityRecord): each
    has `figures` and `passed`.
    artifacts: the manifest's artifact records, for the sizes."""
    lines = [
        "| artifact | size | reviews | max abs diff vs Keras | vs full graph | labels = Keras | accuracy (Keras) | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, result in results.items():
        size = f"{artifacts[key].bytes / 2**20:.2f} MiB" if artifacts else "-"
        figures = result.figures
        vs_full = f"{figures['max_abs_diff_vs_full']:.1e}" if "max_abs_diff_vs_full" in figures else "-"
        lines.append(
            f"| {key} | {size} | {figures['reviews']:,} | {figures['max_abs_diff']:.1e} | {vs_full} | "
            f"{figures['label_agreement'] * 100:.2f} % | {figures['accuracy'] * 100:.2f} % "
            f"({figures['keras_accuracy'] * 100:.2f} %) | {'yes' if result.passed else 'NO'} |"
        )
    return "\n".join(lines)


def failure_message(results: dict[str, validate.ArtifactResult]) -> str:
    """Every failed artifact's figures, one a line."""
    failures = [f"{key}: {failure}" for key, result in results.items() for failure in result.failures]
    return "parity failed:\n  " + "\n  ".join(failures)


def raise_failures(results: dict[str, validate.ArtifactResult]) -> None:
    failed = [key for key, result in results.items() if not result.passed]
    if failed:
        hint = (
            "\nThe runtime refuses these artifacts. An int8 one changed too many answers: export float32 only "
            "(python -m export.tflite / export.onnx --precision float32) or check on more test texts"
            if all(key.endswith("int8") for key in failed)
            else ""
        )
        raise ExportError(failure_message(results) + hint)


def check_reviews(
    folder: Path, trained, reviews, keys: list[str] | None = None, record: bool = True, raise_on_failure: bool = True
) -> dict[str, validate.ArtifactResult]:
    """Run parity on these reviews (of every artifact, or the named ones; the per-step ones through
    export.step_parity), print the tables, raise ExportError on any failure (unless not
    `raise_on_failure`: the results say which failed)."""
    artifacts = bundle.Manifest.read(folder).artifacts
    keys = keys or [key for key in artifacts if key != "keras"]
    steps = [key for key in keys if artifacts[key].graph == bundle.STEPS_GRAPH]
    classify = [key for key in keys if key not in steps]
    results = run_parity(folder, trained, reviews.texts, reviews.labels, classify, record) if classify else {}
    if results:
        print(format_table(results, artifacts))  # recording parity changed no artifact record
    # This module's allowance (not export.config's), so that tightening it here tightens both gates.
    results.update(
        step_parity.check_reviews(folder, trained, reviews, steps, record, allowed_disagreements) if steps else {}
    )
    if raise_on_failure:
        raise_failures(results)
    return results


def check_bundle(
    folder: str | Path, data_source: str | None, limit: int | None, keys: list[str] | None = None, record: bool = True
) -> dict[str, validate.ArtifactResult]:
    """Parity of a bundle's artifacts on real test reviews (all of them, or `limit`)."""
    folder = Path(folder)
    # Recording writes the manifest: an export swapping the bundle meanwhile would drop the records.
    with common.bundle_lock(folder) if record else contextlib.nullcontext():
        manifest, _, trained = common.load_trained(folder)
        return check_reviews(folder, trained, test_reviews(data_source, limit, manifest), keys, record)


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("export.parity", __doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle folder, e.g. runs/imdb-lstm-<time>")
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="the data the bundle was trained on: its test texts are re-created "
        "(IMDB: aclImdb archive or folder, $IMDB_DATA, else download)",
    )
    parser.add_argument("--limit", type=int, help="use N test texts (all of them, IMDB's 25,000, if not given)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    args = parser.parse_args(argv)
    return common.run_command(lambda: check_bundle(args.model, args.data, args.limit), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
