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


def _wrapped(label: str, width: int = 14) -> str:
    """A tick label over several lines, so long names take height rather than run into each other."""
    import textwrap

    return "\n".join(textwrap.wrap(str(label), width, break_long_words=True)) or str(label)


def confusion_figure(labels, counts):
    """The confusion matrix as a matplotlib figure: each true label's test examples (a row) by
    predicted label, shaded by the share of the row, with the counts in the cells when they fit.
    Tick labels are wrapped, the x ones turned when they would touch, and the figure sized to them."""
    import numpy as np

    counts = np.asarray(counts)
    count = len(labels)
    shares = counts / np.maximum(1, counts.sum(axis=1, keepdims=True))
    names = [_wrapped(label) for label in labels]
    longest = max(len(line) for name in names for line in name.split("\n"))  # characters of the widest line
    lines = max(name.count("\n") + 1 for name in names)
    turn = count > 4 or longest > 6  # side by side, names wider than a cell would touch
    # A cell is at least 0.45 inch; the y tick labels take about 0.09 inch a character, the turned
    # x tick labels as much height (plus the lines' height when not turned).
    cells = max(2.5, 0.45 * count)
    width = min(40.0, cells + 0.09 * longest + 2.5)
    height = min(40.0, cells + (0.09 * longest if turn else 0.2 * lines) + 1.8)
    figure, axes = plt.subplots(figsize=(width, height), dpi=100)
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = list(range(count))
    axes.set_xticks(
        ticks,
        names,
        rotation=90 if turn else 0,
        ha="right" if turn else "center",
        rotation_mode="anchor" if turn else "default",
        va="center" if turn else "top",
        fontsize=9,
    )
    axes.set_yticks(ticks, names, fontsize=9)
    axes.set(title="Test examples by true and predicted label", xlabel="predicted label", ylabel="true label")
    if count <= 20:
        for row in ticks:
            for column in ticks:
                axes.text(
                    column,
                    row,
                    f"{counts[row, column]:,}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[row, column] > 0.5 else "black",
                )
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label's examples")
    return figure


def plot_confusion(labels, counts, folder: str | Path) -> Path | None:
    """Write confusion.png (see `confusion_figure`) and return its path; None, with a note on
    stderr, for more labels than a readable plot holds (limits.MAX_PLOTTED_LABELS)."""
    import sys
    import warnings

    from training.limits import MAX_PLOTTED_LABELS

    if len(labels) > MAX_PLOTTED_LABELS:
        print(
            f"note: no confusion.png: {len(labels):,} labels are too many to read in one plot "
            f"(at most {MAX_PLOTTED_LABELS}); the matrix is in metrics.json",
            file=sys.stderr,
        )
        return None
    path = Path(folder) / "confusion.png"
    with warnings.catch_warnings():  # a label in a script the default font lacks is drawn as boxes
        warnings.simplefilter("ignore", UserWarning)
        figure = confusion_figure(labels, counts)
        figure.tight_layout()
        figure.savefig(path, metadata={"Software": None})  # no version stamp: same run, same bytes
    plt.close(figure)
    return path
