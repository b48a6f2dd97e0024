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
import functools
import html
import itertools
import re
import string
import unicodedata
from dataclasses import dataclass
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
# Unicode's Stream-Safe Text Format (UAX #15, section 13): NFKC puts a run of combining marks in
# order by insertion, so a long run of marks of alternating classes costs quadratic time (40,000
# pairs: 10 s). A combining grapheme joiner after every 30 marks in a row bounds each run. No real
# word has a run that long, and a mark alone is no part of a word, so real text keeps its tokens.
MAX_MARKS_IN_A_ROW = 30
_GRAPHEME_JOINER = "\u034f"
_LONG_NON_ASCII = re.compile(rf"[^\x00-\x7f]{{{MAX_MARKS_IN_A_ROW + 1},}}")


def _break_mark_runs(match: re.Match) -> str:
    characters, run = [], 0
    for character in match.group():
        run = run + 1 if unicodedata.combining(character) else 0
        if run > MAX_MARKS_IN_A_ROW:
            characters.append(_GRAPHEME_JOINER)
            run = 1
        characters.append(character)
    return "".join(characters)


def nfkc(text: str) -> str:
    """NFKC of the stream-safe form of `text`: linear time whatever its runs of combining marks."""
    if not text.isascii():
        text = _LONG_NON_ASCII.sub(_break_mark_runs, text)
    return unicodedata.normalize("NFKC", text)


def normalize(text: str) -> str:
    """Lowercase a review and remove its markup, so equal words compare equal."""
    if not isinstance(text, str):
        raise TypeError(f"a review must be a str, not {type(text).__name__}")
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = nfkc(text).casefold()
    for apostrophe in _APOSTROPHES:  # str.replace is ~30x faster than str.translate here
        text = text.replace(apostrophe, "'")
    return text


# For ASCII text, WORD_PATTERN's words are the [a-z0-9'] runs with every apostrophe that is not
# between two letters or digits removed. Bytes operations find them faster than the regex
# (`benchmarks.bench` times both), and tokenizing is part of every review's latency on the device.
_ASCII_WORD_CHARACTERS = (string.ascii_letters + string.digits + "'").encode("ascii")
_ASCII_SEPARATE = bytes(byte if byte in _ASCII_WORD_CHARACTERS else ord(" ") for byte in range(256))


def _ascii_runs(text: str) -> bytes:
    """The text between two spaces, with every character that is no part of a word made a space."""
    runs = b" " + text.encode("ascii").translate(_ASCII_SEPARATE) + b" "
    if b"'" in runs:  # an apostrophe is kept only between two letters or digits
        runs = runs.replace(b"''", b"  ").replace(b" '", b"  ").replace(b"' ", b"  ")
    return runs


def _split_ascii(text: str) -> list[str]:
    return _ascii_runs(text).decode("ascii").split()


def split_words(text: str) -> list[str]:
    """The words of a raw review, in order, normalised."""
    text = normalize(text)
    return _split_ascii(text) if text.isascii() else WORD_PATTERN.findall(text)


# Where each word of `split_words` comes from in the raw text, for highlighting it (`explain`).
# The text is cut into units that `normalize` maps independently: a tag (one space), an entity
# reference (what html.unescape makes of it; the standard library's own pattern), a run of plain
# ASCII (lowercased character by character, so positions map one to one), a run of the common
# combining marks (which all join the unit before them; one unit, not one a mark, for speed), or
# one character.
_ENTITY = r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)"
_PLAIN = r"[\x00-\x25\x27-\x3b\x3d-\x7f]"  # ASCII but "&" and "<", which may start an entity or a tag
_UNIT = re.compile(rf"(?P<tag>{_TAG.pattern})|(?P<entity>{_ENTITY})|{_PLAIN}+|[\u0300-\u036f]+|.", re.DOTALL)


def _fold(text: str) -> str:
    """normalize's steps after markup, which act on each character alone except NFKC's composition."""
    text = nfkc(text).casefold()
    for apostrophe in _APOSTROPHES:
        text = text.replace(apostrophe, "'")
    return text


def _tail(pieces: list[str]) -> str:
    """The last characters of a unit, as many as _composes looks at (only a unit's first piece may be empty)."""
    return "".join(pieces[-8:])[-8:]


def _composes(before: str, after: str) -> bool:
    """Whether NFKC joins the end of `before` with the start of `after` (a combining mark, a Hangul jamo)."""
    if unicodedata.combining(after[0]):
        return True
    tail = before[-8:]  # composition reaches back over one starter and its marks; a longer run of marks joined already
    nfkc = functools.partial(unicodedata.normalize, "NFKC")
    return nfkc(tail + after) != nfkc(tail) + nfkc(after)


def word_spans(text: str, last: int | None = None) -> list[tuple[str, int, int]]:
    """The words of `split_words(text)`, each with the span of the raw text it came from: text[start:end].

    A word made from markup (an entity such as "&eacute;", a character NFKC composes) spans the
    characters that made it. If some text defeated the unit mapping (no review does: the tests
    check all 25,000), its words keep their order and each spans the whole text rather than a wrong part.
    With `last`, only the last `last` words: the text is mapped from a point shortly before them
    (`_cut_before`), so the cost follows the words asked for, not the length of the text.
    """
    if last is None:
        return _word_spans(text)
    if last <= 0:
        return []
    cut = _cut_before(text, last)
    return [(word, start + cut, end + cut) for word, start, end in _word_spans(text[cut:])[-last:]]


# A point where the text can be cut without changing the words after it or where they come from:
# after an ASCII character that is no part of a word (not a letter, digit, apostrophe, ";" that may end
# an entity reference, or the "&" and "<" that begin markup) and before a letter or digit, with no tag
# or entity reference across it.
_CUT = re.compile(r"(?<=[\x00-\x25\x28-\x2f\x3a\x3d-\x40\x5b-\x5f\x7b-\x7f])[^\W_]")
_LONGEST_TAG = 204  # "</", a letter, 200 characters, ">": the most _TAG spans
_LONGEST_NAMED_ENTITY = 34  # "&", 32 characters, ";": a numeric one holds only digits, which no cut follows
_ENTITY_PATTERN = re.compile(_ENTITY)


def _cut_before(text: str, count: int) -> int:
    """A cut point (see _CUT) with at least `count` words after it; 0 when the search finds none.
    It looks at a tail of the text that grows fourfold until it holds them: linear in that tail."""
    size = 8 * count + 256
    while size < len(text):
        position = len(text) - size
        while match := _CUT.search(text, position):
            point = match.start()
            across = _markup_across(text, point)
            if across:
                position = across
            elif _composes(text[point - 1], text[point]):  # NFKC would join it to what comes before
                position = point + 1
            elif len(split_words(text[point:])) >= count:
                return point
            else:
                break
        size *= 4
    return 0


def _markup_across(text: str, point: int) -> int:
    """The end of a tag or entity reference that holds text[point - 1] and text[point], else 0.
    Neither holds its own opening character, so only the last "<" or "&" before the point can."""
    opening = text.rfind("<", max(0, point - _LONGEST_TAG), point)
    tag = _TAG.match(text, opening) if opening >= 0 else None
    if tag and tag.end() > point:
        return tag.end()
    opening = text.rfind("&", max(0, point - _LONGEST_NAMED_ENTITY), point)
    entity = _ENTITY_PATTERN.match(text, opening) if opening >= 0 else None
    if entity and entity.end() > point and html.unescape(entity.group()) != entity.group():
        return entity.end()
    return 0


def _word_spans(text: str) -> list[tuple[str, int, int]]:
    # [start, end, pieces, whether it maps one to one]: `pieces` are what normalize's markup steps
    # make of the unit, in a list so that a long run of combining marks is joined once, not once a mark.
    units = []
    start = 0
    while start < len(text):
        match = _UNIT.match(text, start)
        raw, end = match.group(), match.end()
        if match.lastgroup == "tag":
            raw = " "
        elif match.lastgroup == "entity":
            raw = html.unescape(raw)
            if raw == match.group():  # no reference after all: "&", then its characters stand for themselves
                raw, end = "&", start + 1
        if units and raw and not raw[0].isascii() and _composes(_tail(units[-1][2]), raw):
            last = units[-1]
            if last[3] and last[1] - last[0] > 1:  # a plain run gives only its last character to the mark
                run = last[2][0]
                units.insert(-1, [last[0], last[1] - 1, [run[:-1]], True])
                last[0], last[2] = last[1] - 1, [run[-1]]
            last[1], last[3] = end, False
            last[2].append(raw)
        else:
            units.append([start, end, [raw], raw == match.group() and raw.isascii()])
        start = end
    pieces = [_fold("".join(raw)) for _, _, raw, _ in units]
    folded = "".join(pieces)
    words = split_words(text)
    if folded != normalize(text):
        return [(word, 0, len(text)) for word in words]
    if not words:
        return []
    if folded.isascii():  # where the runs of word characters start and stop, without a loop over words
        edges = np.flatnonzero(np.diff(np.frombuffer(_ascii_runs(folded), np.uint8) != ord(" ")))
        starts, stops = edges[0::2], edges[1::2]
    else:  # each word is the first match after the last: between two words lie no letters or digits
        starts, position = [], 0
        for word in words:
            starts.append(folded.find(word, position))
            position = starts[-1] + len(word)
        starts = np.array(starts)
        stops = starts + np.array([len(word) for word in words])
    # Where each character of `folded` begins and ends in `text`: plain ASCII one for one, any
    # other unit (markup, a composed character) all of it.
    begins = np.concatenate(
        [
            np.arange(start, end) if plain else np.full(len(piece), start)
            for (start, end, _, plain), piece in zip(units, pieces)
        ]
    )
    ends = np.concatenate(
        [
            np.arange(start + 1, end + 1) if plain else np.full(len(piece), end)
            for (start, end, _, plain), piece in zip(units, pieces)
        ]
    )
    return list(zip(words, begins[starts].tolist(), ends[stops - 1].tolist()))


@dataclass(frozen=True)
class Coverage:
    """How many of the words the model read its vocabulary knows. A text in another language or
    made of words the model never saw is read as out-of-vocabulary ids, and its answer says nothing."""

    known_words: int
    words: int  # the words read: all of the text's, or its last ones when it is longer than the sequence

    @property
    def share(self) -> float:
        return self.known_words / self.words if self.words else 0.0

    def to_dict(self) -> dict:
        return {"known_words": self.known_words, "words": self.words}

    def __str__(self) -> str:
        return f"the model knows {self.known_words} of {self.words} word{'s' * (self.words != 1)} read"


def coverage(ids: Sequence[int]) -> Coverage:
    """The Coverage of one review's unpadded token ids (`Tokenizer.token_ids`)."""
    words = [token for token in ids if token != START_ID]  # no word has the start id
    return Coverage(sum(token >= FIRST_WORD_ID for token in words), len(words))


def pad_ids(sequences: Sequence[Sequence[int]], length: int) -> np.ndarray:
    """Pad in front with PAD_ID and keep the last `length` ids, like `pad_sequences` defaults."""
    batch = np.full((len(sequences), length), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(sequences):
        kept = list(ids)[-length:] if length else []
        if kept:
            batch[row, length - len(kept) :] = kept
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

    def word_id(self, word: str) -> int:
        """A normalised word's id: its vocabulary id, or OOV_ID."""
        return self._ids.get(word, OOV_ID)

    def token_ids(self, text: str) -> list[int]:
        """The ids of one review, unpadded: the start id and one id a word, at most sequence_length."""
        ids = [START_ID, *map(self._ids.get, split_words(text), itertools.repeat(OOV_ID))]
        return ids[-self.sequence_length :]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A batch of reviews as an int32 array of shape (len(texts), sequence_length)."""
        return pad_ids([self.token_ids(text) for text in texts], self.sequence_length)
