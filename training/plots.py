"""Accuracy and loss curves of a training run and its test confusion matrix, written as PNG files
without a display."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history: dict, folder: str | Path) -> list[Path]:
    """Write accuracy.png and loss.png (training vs validation per epoch); return their paths."""
    written = []
    for metric, title in (("accuracy", "Accuracy"), ("loss", "Loss")):
        epochs = range(1, len(history[metric]) + 1)
        figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
        axes.plot(epochs, history[metric], "o-", label="training")
        axes.plot(epochs, history[f"val_{metric}"], "s-", label="validation")
        axes.set(title=f"{title} per epoch", xlabel="epoch", ylabel=metric.lower())
        axes.set_xticks(list(epochs))
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = Path(folder) / f"{metric}.png"
        figure.savefig(path, metadata={"Software": None})  # no version stamp: same run, same bytes
        plt.close(figure)
        written.append(path)
    return written


def plot_confusion(labels, counts, folder: str | Path) -> Path:
    """Write confusion.png: each true label's test examples (a row) by predicted label, shaded by the
    share of the row, with the counts written in the cells when they fit; return its path."""
    import warnings

    import numpy as np

    counts = np.asarray(counts)
    shares = counts / np.maximum(1, counts.sum(axis=1, keepdims=True))
    size = min(16.0, max(4.5, 0.55 * len(labels) + 2.5))
    figure, axes = plt.subplots(figsize=(size, size * 0.85), dpi=100)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = range(len(labels))
    axes.set_xticks(list(ticks), [str(label) for label in labels], rotation=45 if len(labels) > 4 else 0, ha="right"
                    if len(labels) > 4 else "center")
    axes.set_yticks(list(ticks), [str(label) for label in labels])
    axes.set(title="Test examples by true and predicted label", xlabel="predicted label", ylabel="true label")
    if len(labels) <= 20:
        for row in ticks:
            for column in ticks:
                axes.text(column, row, f"{counts[row, column]:,}", ha="center", va="center", fontsize=8,
                          color="white" if shares[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label's examples")
    path = Path(folder) / "confusion.png"
    with warnings.catch_warnings():  # a label in a script the default font lacks is drawn as boxes
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()
        figure.savefig(path, metadata={"Software": None})  # no version stamp: same run, same bytes
    plt.close(figure)
    return path
