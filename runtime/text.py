"""The project's one tokenizer: raw review text to the model's token ids.

Training, export and the device runtime all call this module, so a review gets the same ids
wherever it is tokenized. It needs only the standard library and numpy.

Ids follow the `keras.datasets.imdb` convention: 0 pads, 1 starts a review, 2 stands for a word
outside the vocabulary, and the vocabulary's words take the ids from 3 up, most frequent first.
Sequences are padded and truncated as `keras.utils.pad_sequences` does by default: zeros in
front, and a review longer than the sequence length keeps its last tokens.
"""

from __future__ import annotations

import collections
import html
import itertools
import re
import string
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PAD_ID = 0
START_ID = 1
OOV_ID = 2
FIRST_WORD_ID = 3

# HTML tags such as the dataset's `<br />`; a lone "<" or ">" in prose is left alone.
_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
# A word: letters and digits in any script, with inner apostrophes kept ("don't", "it's").
WORD_PATTERN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_VOCABULARY = re.compile(rf"(?:{WORD_PATTERN.pattern}\n)*")  # a vocabulary file: one word a line
_APOSTROPHES = ("\u2019", "\u2018", "`", "\u00b4")  # read as "'"


def normalize(text: str) -> str:
    """Lowercase a review and remove its markup, so equal words compare equal."""
    if not isinstance(text, str):
        raise TypeError(f"a review must be a str, not {type(text).__name__}")
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text).casefold()
    for apostrophe in _APOSTROPHES:  # str.replace is ~30x faster than str.translate here
        text = text.replace(apostrophe, "'")
    return text


# For ASCII text, WORD_PATTERN's words are the [a-z0-9'] runs with every apostrophe that is not
# between two letters or digits removed. Bytes operations find them faster than the regex
# (`benchmarks.bench` times both), and tokenizing is part of every review's latency on the device.
_ASCII_WORD_CHARACTERS = (string.ascii_letters + string.digits + "'").encode("ascii")
_ASCII_SEPARATE = bytes(byte if byte in _ASCII_WORD_CHARACTERS else ord(" ") for byte in range(256))


def _split_ascii(text: str) -> list[str]:
    runs = b" " + text.encode("ascii").translate(_ASCII_SEPARATE) + b" "
    if b"'" in runs:  # an apostrophe is kept only between two letters or digits
        runs = runs.replace(b"''", b"  ").replace(b" '", b"  ").replace(b"' ", b"  ")
    return runs.decode("ascii").split()


def split_words(text: str) -> list[str]:
    """The words of a raw review, in order, normalised."""
    text = normalize(text)
    return _split_ascii(text) if text.isascii() else WORD_PATTERN.findall(text)


def pad_ids(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """Pad in front with PAD_ID and keep the last `length` ids, like `pad_sequences` defaults."""
    batch = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(sequences):
        kept = list(ids)[-length:] if length else []
        if kept:
            batch[row, length - len(kept):] = kept
    return batch


class Tokenizer:
    """Maps raw reviews to token ids with a fixed vocabulary (one word a line in a text file)."""

    def __init__(self, words: Sequence[str], sequence_length: int):
        if len(set(words)) != len(words):
            raise ValueError("the vocabulary has duplicate words")
        self.words = tuple(words)
        self.sequence_length = sequence_length
        self._ids = {word: index for index, word in enumerate(self.words, start=FIRST_WORD_ID)}

    @property
    def vocab_size(self) -> int:
        """Ids in use, the reserved ones included: the model's embedding input dimension."""
        return FIRST_WORD_ID + len(self.words)

    @classmethod
    def build(cls, texts: Iterable[str], vocab_size: int, sequence_length: int) -> "Tokenizer":
        """Keep the vocab_size - FIRST_WORD_ID most frequent words of `texts` (ties: alphabetical)."""
        if vocab_size <= FIRST_WORD_ID:
            raise ValueError(f"vocab_size must exceed the {FIRST_WORD_ID} reserved ids")
        counts = collections.Counter()
        for text in texts:
            counts.update(split_words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([word for word, _ in ranked[: vocab_size - FIRST_WORD_ID]], sequence_length)

    @classmethod
    def load(cls, path: str | Path, sequence_length: int) -> "Tokenizer":
        return cls.parse(Path(path).read_bytes(), sequence_length, path)

    @classmethod
    def parse(cls, content: bytes, sequence_length: int, source: str | Path = "vocabulary") -> "Tokenizer":
        """A vocabulary file's bytes, one word a line. Errors give the line number, never the
        line itself: a file that is not a vocabulary may hold anything."""
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{source}: not a vocabulary file (not UTF-8)") from None
        words = text.splitlines()
        # One pass of the word pattern over the whole file; line by line only to name a bad line.
        if _VOCABULARY.fullmatch("".join(word + "\n" for word in words)) is None:
            number = next(n for n, word in enumerate(words, start=1) if WORD_PATTERN.fullmatch(word) is None)
            raise ValueError(f"{source}: not a vocabulary file (line {number} is not one word)")
        if len(set(words)) != len(words):
            raise ValueError(f"{source}: the vocabulary has duplicate words")
        return cls(words, sequence_length)

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(word + "\n" for word in self.words), encoding="utf-8")

    def token_ids(self, text: str) -> list[int]:
        """The ids of one review, unpadded: the start id and one id a word, at most sequence_length."""
        ids = [START_ID, *map(self._ids.get, split_words(text), itertools.repeat(OOV_ID))]
        return ids[-self.sequence_length:]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A batch of reviews as an int32 array of shape (len(texts), sequence_length)."""
        return pad_ids([self.token_ids(text) for text in texts], self.sequence_length)
