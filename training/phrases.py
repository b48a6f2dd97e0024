"""Labelled phrase trees in the Stanford Sentiment Treebank's format (Socher et al., EMNLP 2013).

One sentence a line as a binary parse tree in PTB notation, every node labelled 0-4 (0-1 negative,
2 neutral, 3-4 positive): `(1 (2 This) (2 (1 (1 (2 is) (2 n't)) (3 (2 a) (2 (3 new) (2 idea))))))`.
Every node that is not neutral is a short training text ("n't a new idea" negative), so a model
sees negation and contrast in miniature; the roots alone are the sentence task (SST-2, SST-5).

Leaves are PTB tokens: they are turned back into the raw text a user would type ("does n't" ->
"doesn't", `-LRB-` -> "("), because the model reads raw text through runtime.text's tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.bundle import sha256_file
from training.data import DataError, Split
from training.limits import MAX_TEXT_BYTES

NEUTRAL = 2
FINE_LABELS = 5  # the treebank's 0-4
# PTB escapes for characters that are brackets or slashes in the notation itself.
_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
CITATION = (
    "Socher, Perelygin, Wu, Chuang, Manning, Ng and Potts (2013), Recursive Deep Models for Semantic "
    "Compositionality Over a Sentiment Treebank, EMNLP"
)


@dataclass(frozen=True)
class TreeFile:
    """A treebank file read: each sentence (the root) and each labelled phrase, as raw text."""

    path: str
    sha256: str
    sentences: tuple[tuple[str, int], ...]  # (text, fine label 0-4), one a tree, neutral ones included
    phrases: tuple[tuple[str, int], ...]  # every node's distinct (text, fine label), neutral ones included


def detokenize(tokens: list[str]) -> str:
    """The raw text of PTB tokens."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    tokens = [_PTB_ESCAPES.get(token, token.replace("\\/", "/").replace("\\*", "*")) for token in tokens]
    return TreebankWordDetokenizer().detokenize(tokens)


def read_trees(path: str | Path) -> TreeFile:
    """Every tree of a treebank file; a line that is not a labelled tree refuses the file (DataError)."""
    from nltk.tree import Tree

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read the phrase trees {path}: {error}") from None
    sentences, phrases = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line.encode()) > MAX_TEXT_BYTES:
            raise DataError(f"{path}, line {number}: a tree over {MAX_TEXT_BYTES:,} bytes")
        try:
            tree = Tree.fromstring(line)
            nodes = [(detokenize(node.leaves()), _fine_label(node.label())) for node in tree.subtrees()]
        except ValueError as error:
            raise DataError(f"{path}, line {number}: not a labelled phrase tree ({error})") from None
        sentences.append(nodes[0])
        for text, label in nodes:
            phrases.setdefault(text, label)  # a phrase repeated across trees is one text
    if not sentences:
        raise DataError(f"{path}: no phrase trees")
    return TreeFile(str(path), sha256_file(path), tuple(sentences), tuple(phrases.items()))


def _fine_label(label) -> int:
    if not (isinstance(label, str) and label.isdigit() and int(label) < FINE_LABELS):
        raise ValueError(f"a node's label must be 0-4, not {label!r}")
    return int(label)


def to_labels(pairs: tuple[tuple[str, int], ...], num_labels: int, source: str) -> Split:
    """The texts with a label of `num_labels`: two labels are the treebank's negative (0-1) and
    positive (3-4), neutral ones dropped (SST-2); five are the treebank's own (SST-5)."""
    if num_labels == 2:
        kept = [(text, int(label > NEUTRAL)) for text, label in pairs if label != NEUTRAL and text.strip()]
    elif num_labels == FINE_LABELS:
        kept = [(text, label) for text, label in pairs if text.strip()]
    else:
        raise DataError(f"{source}: phrase trees label 2 (negative/positive) or 5 classes, not {num_labels}")
    texts = [text for text, _ in kept]
    return Split(texts, np.array([label for _, label in kept], np.int32), np.arange(len(kept), dtype=np.int64))
