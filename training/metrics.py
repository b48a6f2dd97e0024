"""Classification figures for any number of labels: accuracy, per-label precision, recall and F1,
the confusion matrix, and, when every label is an integer (star ratings), how far off the
predicted value is."""

from __future__ import annotations

import numpy as np

from training.sources import is_integer


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, count: int) -> np.ndarray:
    """counts[i, j]: examples of label i predicted as label j."""
    counts = np.zeros((count, count), np.int64)
    np.add.at(counts, (np.asarray(truth), np.asarray(predicted)), 1)
    return counts


def classification_metrics(labels: tuple[str, ...], truth: np.ndarray, predicted: np.ndarray) -> dict:
    """The figures the manifest records for the test split (rounded to 6 digits)."""
    counts = confusion_matrix(truth, predicted, len(labels))
    per_label = {}
    for index, label in enumerate(labels):
        hits, predicted_as, actual = counts[index, index], counts[:, index].sum(), counts[index].sum()
        precision = hits / predicted_as if predicted_as else 0.0
        recall = hits / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {
            "precision": round(float(precision), 6),
            "recall": round(float(recall), 6),
            "f1": round(float(f1), 6),
            "support": int(actual),
        }
    result = {
        "accuracy": round(float(np.trace(counts) / max(1, counts.sum())), 6),
        "macro_f1": round(float(np.mean([row["f1"] for row in per_label.values()])), 6),
        "per_label": per_label,
        "confusion": {
            "rows": "true label",
            "columns": "predicted label",
            "labels": list(labels),
            "counts": counts.tolist(),
        },
    }
    values = integer_values(labels)
    if values is not None:
        distance = np.abs(values[np.asarray(truth)] - values[np.asarray(predicted)])
        result["within_one_accuracy"] = round(float((distance <= 1).mean()), 6)
        result["mean_absolute_error"] = round(float(distance.mean()), 6)
    return result


def integer_values(labels: tuple[str, ...]) -> np.ndarray | None:
    """The labels as numbers when every one is an integer (ratings), else None."""
    if all(map(is_integer, labels)):
        return np.array([int(label) for label in labels], np.int64)
    return None


def format_metrics(metrics: dict) -> str:
    """Per-label precision, recall, F1 and support as a Markdown table, then the summary lines."""
    lines = ["| label | precision | recall | F1 | test texts |", "|---|---|---|---|---|"]
    for label, row in metrics["per_label"].items():
        lines.append(
            f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']:,} |"
        )
    lines.append(f"\nmacro F1 {metrics['macro_f1']:.4f}")
    if "within_one_accuracy" in metrics:
        lines[-1] += (
            f"; within one of the true label's value: {metrics['within_one_accuracy'] * 100:.2f} %"
            f"; mean absolute error {metrics['mean_absolute_error']:.3f}"
        )
    return "\n".join(lines)


def write_report(path, report: dict) -> None:
    """Write the figures as indented JSON with each list of numbers (a confusion row) on one line,
    so a matrix of many labels stays a file of one line a row."""
    import json
    import re

    from runtime.bundle import atomic_path

    text = json.dumps(report, indent=2, ensure_ascii=False)
    text = re.sub(
        r"\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]",
        lambda match: "[" + ", ".join(match.group(1).replace(",", " ").split()) + "]",
        text,
    )
    with atomic_path(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
