import numpy as np
import pytest

from tests.conftest import ROOT
from training import pairs
from training.data import DataError

CAD_DEV = ROOT.parent / "shared" / "data" / "cad" / "dev_paired.tsv"
HEADER = "Sentiment\tText\tbatch_id\n"


def test_pairs_are_labelled_by_name_ignoring_case(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(HEADER + "Negative\tNot good.\t4\nPositive\tSo good.\t4\nPositive\tFun.\t9\nNegative\tNo fun.\t9\n")
    split = pairs.to_labels(pairs.read_pairs(path), ("negative", "positive"))
    assert split.texts == ["Not good.", "So good.", "Fun.", "No fun."]
    assert split.labels.tolist() == [0, 1, 1, 0] and split.ids.tolist() == [0, 0, 1, 1]
    with pytest.raises(DataError, match="not the data's"):
        pairs.to_labels(pairs.read_pairs(path), ("bad", "good"))


@pytest.mark.parametrize(
    "content, message",
    [
        ("Label\tText\tbatch_id\nNegative\ta\t1\nPositive\tb\t1\n", "header names Sentiment, Text, batch_id"),
        (HEADER + "Negative\ta\t1\n", "pairs are two consecutive rows"),
        (HEADER + "Negative\ta\t1\nNegative\tb\t1\n", "rows 2-3: a pair is two rows"),
        (HEADER + "Negative\ta\t1\nPositive\tb\t2\n", "rows 2-3: a pair is two rows"),
    ],
)
def test_a_malformed_pair_file_is_refused(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        pairs.read_pairs(path)


def test_the_counterfactual_dev_pairs():
    if not CAD_DEV.is_file():
        pytest.skip("the counterfactual pairs are not in ../shared/data/cad")
    split = pairs.to_labels(pairs.read_pairs(CAD_DEV), ("negative", "positive"))
    assert len(split) == 490 and np.all(split.labels[0::2] != split.labels[1::2])
