import random

import numpy as np
import pytest

from runtime import text as text_module
from runtime.text import (
    OOV_ID,
    PAD_ID,
    START_ID,
    WORD_PATTERN,
    Tokenizer,
    _cut_before,
    normalize,
    pad_ids,
    split_words,
    word_spans,
)


@pytest.fixture
def tokenizer():
    return Tokenizer(["the", "movie", "don't", "good", "bad"], sequence_length=8)


def test_html_tags_and_entities_are_removed():
    assert split_words("Great<br /><br />fun &amp; <i>witty</i> &quot;film&quot;") == ["great", "fun", "witty", "film"]


def test_punctuation_and_case():
    assert split_words("WOW!!! The Movie... wasn't (at all) bad?!") == [
        "wow",
        "the",
        "movie",
        "wasn't",
        "at",
        "all",
        "bad",
    ]


def test_curly_apostrophes_and_fullwidth_letters_normalise():
    assert split_words("Don’t ＬＯＶＥ it") == ["don't", "love", "it"]


def test_a_lone_angle_bracket_is_not_a_tag():
    assert split_words("a < b and c > d") == ["a", "b", "and", "c", "d"]


def test_emoji_control_characters_cjk_and_rtl():
    assert split_words("good\x00\x07movie 😀 映画 فيلم") == ["good", "movie", "映画", "فيلم"]


def test_apostrophes_stay_only_inside_words():
    assert split_words("'Quoted' rock'n'roll a''b don't' ''' 90's x'_y") == [
        "quoted",
        "rock'n'roll",
        "a",
        "b",
        "don't",
        "90's",
        "x",
        "y",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "'",
        "''a",
        "a'",
        "a' 'b",
        "a'''b",
        "a''''b",
        "'a'b'",
        "snake_case_name",
        "x'y'z''w",
        "tab\tnew\nline\r",
        "",
        "9-5 o'clock, 3:10 to 'yuma'",
    ],
)
def test_ascii_words_are_the_word_pattern_matches(text):
    """ASCII text takes a faster path than the regex; its words must be the regex's."""
    assert normalize(text).isascii()
    assert split_words(text) == WORD_PATTERN.findall(normalize(text))


@pytest.mark.slow
def test_every_test_review_splits_as_the_word_pattern_does(shared_test_set):
    differing = [text for text in shared_test_set.texts if split_words(text) != WORD_PATTERN.findall(normalize(text))]
    assert not differing, differing[0]


def test_unknown_words_map_to_oov(tokenizer):
    assert tokenizer.token_ids("The movie was GOOD, zebra!") == [START_ID, 3, 4, OOV_ID, 6, OOV_ID]


def test_empty_text_is_only_the_start_id(tokenizer):
    assert tokenizer.token_ids("") == [START_ID]
    assert tokenizer.token_ids("  \n\t ") == [START_ID]
    assert tokenizer.encode([""]).tolist() == [[PAD_ID] * 7 + [START_ID]]


def test_very_long_text_keeps_its_last_tokens(tokenizer):
    text = "bad " * 100_000 + "the movie don't"
    assert tokenizer.token_ids(text) == [7, 7, 7, 7, 7, 3, 4, 5]


def test_non_string_is_a_type_error(tokenizer):
    with pytest.raises(TypeError, match="must be a str"):
        tokenizer.token_ids(b"bytes")


def test_build_keeps_the_most_frequent_words_with_reserved_ids():
    built = Tokenizer.build(["b a a", "c c c a"], vocab_size=5, sequence_length=4)
    assert built.words == ("a", "c")  # 3 + 2 ids: the reserved ones and the two most frequent
    assert built.vocab_size == 5


def test_save_and_load_round_trip(tmp_path, tokenizer):
    path = tmp_path / "vocab.txt"
    tokenizer.save(path)
    loaded = Tokenizer.load(path, 8)
    assert loaded.words == tokenizer.words
    path.write_text("good\nnot a word\n")
    with pytest.raises(ValueError, match="not a vocabulary file"):
        Tokenizer.load(path, 8)


@pytest.mark.parametrize("length", [1, 5, 8, 20])
def test_padding_matches_keras_pad_sequences(length):
    keras = pytest.importorskip("keras", reason="needs the training extra")
    rng = np.random.default_rng(length)
    sequences = [list(rng.integers(1, 100, size=n)) for n in (0, 1, 3, 5, 8, 13, 40)]
    expected = keras.utils.pad_sequences(sequences, maxlen=length)
    np.testing.assert_array_equal(pad_ids(sequences, length), expected)
    assert pad_ids(sequences, length).dtype == expected.dtype


def test_real_reviews_tokenize_the_same_on_both_sides(shared_test_reviews):
    """Training encodes whole batches, the device one review at a time: the ids must agree."""
    keras = pytest.importorskip("keras", reason="needs the training extra")
    tokenizer = Tokenizer.build(shared_test_reviews.texts[:200], vocab_size=2000, sequence_length=500)
    texts = shared_test_reviews.texts[200:]
    batch = tokenizer.encode(texts)
    one_by_one = keras.utils.pad_sequences([tokenizer.token_ids(text) for text in texts], maxlen=500)
    np.testing.assert_array_equal(batch, one_by_one)
    assert (batch == OOV_ID).any() and (batch[:, 0] == PAD_ID).any()


# --- word spans: cost -------------------------------------------------------------------------------


def test_word_spans_handles_a_long_run_of_combining_marks_in_linear_work(monkeypatch):
    """A mark joins the unit before it: the unit grew by string concatenation once a mark, so each
    NFKC check and join handled the whole run so far (quadratic). Count the characters they see."""
    import runtime.text as text_module

    seen = []
    composes, fold = text_module._composes, text_module._fold
    monkeypatch.setattr(
        text_module, "_composes", lambda before, after: seen.append(len(before) + len(after)) or composes(before, after)
    )
    monkeypatch.setattr(text_module, "_fold", lambda text: seen.append(len(text)) or fold(text))
    marks = 50_000
    assert text_module.word_spans("a" + "\u0301" * marks) == [("\u00e1", 0, marks + 1)]
    assert sum(seen) < 20 * marks  # quadratic: about marks ** 2 / 2


# --- word spans of the last words only --------------------------------------------------------------

FUZZ_ALPHABET = list("abcXYZ '’<>&;#/ib0123\n,._:`") + [
    "<br />",
    "&amp;",
    "&eacute;",
    "&#x301;",
    "&#769;",
    "\u0301",
    "\u0323",
    "é",
    "ß",
    "ﬁ",
    "ＬＯ",
    "ᄀ",
    "\u1161",
    "\u11a8",
    "한",
    "\u0bc6",
    "\u0bbe",
    "😀",
    "İ",
    "ǅ",
    "&am",
    "&ampx",
    "&amp,",
    "&ampgood",
    "&#233",
    "&#x41",
    "Σ",
    "\u00a0",
    "½",
    "&#1;",
    "<i>",
    "</i>",
    "<a x='1 2'>",
    "word ",
    " the ",
]


@pytest.mark.slow
def test_the_last_words_spans_are_those_of_the_whole_text():
    """word_spans(text, last=k) maps only a tail of the text, cut where no word, tag, entity or
    composed character crosses: the same words and spans as the whole text's last k."""
    generator = random.Random(0)
    cut = 0
    for _ in range(1500):
        text = "".join(generator.choice(FUZZ_ALPHABET) for _ in range(generator.randint(0, 400)))
        whole = word_spans(text)
        if len(whole) > 1 and whole[0][1:] == whole[-1][1:] == (0, len(text)):
            continue  # the whole text defeated the unit mapping (see word_spans); a tail may not
        for last in (1, 3, 10, 1000):
            point = _cut_before(text, last)
            cut += point > 0
            assert split_words(text[:point]) + split_words(text[point:]) == split_words(text), (text, point)
            assert word_spans(text, last=last) == whole[-last:], (text, last)
    assert cut > 2000  # the cut was made, not only the whole text mapped
    assert word_spans("a b c", last=0) == []


def test_the_last_words_of_a_long_text_map_only_its_tail(monkeypatch):
    import runtime.text as text_module

    text = "It&#39;s <i>great</i>, caf\u00e9 na\u0131\u0308ve! " * 10_000  # 380,000 characters, 50,000 words
    whole = word_spans(text)
    mapped = []
    spans = text_module._word_spans
    monkeypatch.setattr(text_module, "_word_spans", lambda text: mapped.append(len(text)) or spans(text))
    assert word_spans(text, last=500) == whole[-500:]
    assert sum(mapped) < 20_000  # characters mapped: about the last 500 words' (each 4 words take 38)


def test_nfkc_bounds_runs_of_combining_marks_so_normalizing_is_linear(monkeypatch):
    # NFKC orders a run of marks by insertion: 40,000 alternating pairs took 10 s before the
    # stream-safe form. Count what reaches unicodedata.normalize instead of timing it.
    import unicodedata

    longest_runs = []
    real_normalize = unicodedata.normalize

    def counting(form, text):
        run = longest = 0
        for character in text:
            run = run + 1 if unicodedata.combining(character) else 0
            longest = max(longest, run)
        longest_runs.append(longest)
        return real_normalize(form, text)

    monkeypatch.setattr(text_module.unicodedata, "normalize", counting)
    hostile = "a" + "\u0301\u0323" * 5_000 + " good"
    assert text_module.split_words(hostile)[-1] == "good"
    assert max(longest_runs) <= text_module.MAX_MARKS_IN_A_ROW
    # Real text with a few marks a word keeps its words.
    assert text_module.split_words("Cafe\u0301 tre\u0300s bien, n\u0303o") == ["café", "très", "bien", "ño"]
