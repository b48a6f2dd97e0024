"""The confusion plot stays readable for long, multi-word labels and as many labels as it draws,
and is skipped with a note beyond that (finding F1)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="needs the training extra")

from training import limits, plots  # noqa: E402


def _extents(figure):
    figure.tight_layout()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]

    def boxes(texts):
        return [text.get_window_extent(renderer) for text in texts if text.get_text()]

    return (
        boxes(axes.get_xticklabels()),
        boxes(axes.get_yticklabels()),
        boxes([axes.xaxis.label, axes.yaxis.label, axes.title]),
        figure.bbox,
    )


@pytest.mark.parametrize(
    "labels",
    [
        ["thumbs down", "thumbs up"],
        ["thumbs down", "meh", "thumbs up"],
        ["a review that says very little about the film itself", "short", "x"],
        [f"label number {index}" for index in range(limits.MAX_PLOTTED_LABELS)],
    ],
)
def test_tick_labels_never_touch_and_every_title_is_inside_the_figure(labels):
    count = len(labels)
    figure = plots.confusion_figure(labels, np.arange(count * count).reshape(count, count))
    x_ticks, y_ticks, titles, page = _extents(figure)
    assert len(x_ticks) == len(y_ticks) == count
    for ticks in (x_ticks, y_ticks):
        assert not any(a.overlaps(b) for i, a in enumerate(ticks) for b in ticks[i + 1 :])
    for box in x_ticks + y_ticks + titles:  # nothing cut off, the y-axis title included
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1
    plots.plt.close(figure)


def test_too_many_labels_are_not_plotted_and_say_so(tmp_path, capsys):
    count = limits.MAX_PLOTTED_LABELS + 1
    assert plots.plot_confusion([str(i) for i in range(count)], np.zeros((count, count), int), tmp_path) is None
    assert "note: no confusion.png" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    assert plots.plot_confusion(["a", "b"], [[1, 0], [0, 1]], tmp_path) == tmp_path / "confusion.png"
