import pytest

pytest.importorskip("nltk", reason="needs the training extra")

from tests.conftest import ROOT  # noqa: E402
from training import phrases  # noqa: E402
from training.data import DataError  # noqa: E402

TREES = "(1 (2 This) (2 (1 (1 (2 is) (2 n't)) (3 (2 a) (2 (3 new) (2 idea)))) (2 .)))\n(4 (3 Loved) (2 it))\n"
SST = ROOT.parent / "shared" / "data" / "sst"


def test_every_labelled_node_is_a_raw_text(tmp_path):
    path = tmp_path / "trees.txt"
    path.write_text(TREES)
    trees = phrases.read_trees(path)
    assert trees.sentences == (("This isn't a new idea.", 1), ("Loved it", 4))  # PTB tokens back to raw text
    assert ("isn't a new idea", 1) in trees.phrases and ("new", 3) in trees.phrases
    binary = phrases.to_labels(trees.phrases, 2, str(path))
    assert "This" not in binary.texts  # neutral nodes are dropped for two labels
    assert dict(zip(binary.texts, binary.labels)) == {
        "This isn't a new idea.": 0,
        "isn't a new idea": 0,
        "is n't"[:0] + "isn't": 0,
        "a new idea": 1,
        "new": 1,
        "Loved it": 1,
        "Loved": 1,
    }
    assert len(phrases.to_labels(trees.phrases, 5, str(path))) == len(trees.phrases)


def test_ptb_escapes_become_characters():
    assert phrases.detokenize(["-LRB-", "1999", "-RRB-", "and\\/or", "ca", "n't"]) == "(1999) and/or can't"


@pytest.mark.parametrize(
    "line, message",
    [("(1 (2 a) (2 b)", "line 2: not a labelled phrase tree"), ("(7 (2 a) (2 b))", "line 2: not a labelled")],
)
def test_a_broken_tree_names_its_line(tmp_path, line, message):
    path = tmp_path / "trees.txt"
    path.write_text("(3 (2 fine) (3 good))\n" + line + "\n")
    with pytest.raises(DataError, match=message):
        phrases.read_trees(path)


def test_three_labels_are_refused(tmp_path):
    path = tmp_path / "trees.txt"
    path.write_text(TREES)
    with pytest.raises(DataError, match="label 2 .* or 5 classes, not 3"):
        phrases.to_labels(phrases.read_trees(path).phrases, 3, str(path))


def test_the_treebank_gives_sst2_sizes():
    if not (SST / "test.txt").is_file():
        pytest.skip("the treebank is not in ../shared/data/sst")
    for name, sentences in (("dev.txt", 872), ("test.txt", 1821)):
        trees = phrases.read_trees(SST / name)
        assert len(phrases.to_labels(trees.sentences, 2, name)) == sentences  # SST-2's published sizes
