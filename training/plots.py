"""Accuracy and loss curves of a training run, written as PNG files without a display."""

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
