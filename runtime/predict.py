"""Classify reviews from the command line: `imdb-sentiment` (or `python -m runtime.predict`).

    imdb-sentiment "A wonderful film with a brilliant cast."
    imdb-sentiment --file reviews.txt                # one review a line
    cat reviews.jsonl | imdb-sentiment --jsonl       # {"text": ...} or "..." a line, from stdin
    imdb-sentiment --explain "A dull start, but the cast is wonderful."   # why: word by word

Prints one JSON object a review (or a line of text with --format text), in input order. An input
that cannot be classified (no words, invalid UTF-8, bad JSON, a line over 4 MiB) gets an object
with an "error" instead and the others go on. With --explain, the object is the model's opinion
after every word (runtime.explain); on a terminal the default is the review itself, each word
coloured by its effect as the explain page shows it (blue toward positive, orange toward negative;
with more than two labels, toward the final label or away from it), with a legend, and the label.

Text output shows a review's control and format characters (Unicode Cc and Cf: ESC, bidi
overrides) as escapes (\\x1b, \\u202e), so a review cannot drive the terminal; JSON escapes them too.
--file reads a file or a pipe (`--file <(zcat reviews.gz)`), not a folder or a device. Blank
lines (of --file or standard input) are skipped: they are not reviews and get no index.

Every answer says how many of the words it read the model knows ("coverage"), and carries a
"warning" when it knows fewer than half: a text in another language gets probabilities that mean
little. --min-known SHARE refuses such a review instead (an error on its line, exit status 4).

Exit status: 0 every review classified; 1 some inputs failed, the model could not be loaded or
--file cannot be read; 2 a usage error; 3 --explain of a model that has no opinion after each word
(a bidirectional or attention model: runtime.explain says why); 4 the only failures were reviews
refused by --min-known; 130 interrupted (Ctrl-C); 141 the output pipe was closed (as `head` does).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import BinaryIO, Iterator

from runtime import backends, bundle, cli, model_options
from runtime.classifier import ClassifierOptions, TooFewKnownWords, UnverifiedArtifactWarning
from runtime.display import json_printable, printable
from runtime.explain import Explanation, NoRunningOpinion, check_running_opinion

# The longest input line read; a longer one is skipped in bounded memory and reported. 4 bytes a
# character is the UTF-8 worst case for the classifier's limit (MAX_TEXT_CHARACTERS).
MAX_LINE_BYTES = 4 << 20
NO_RUNNING_OPINION_STATUS = 3  # --explain of a model explain is not defined for
TOO_FEW_KNOWN_STATUS = 4  # the only failures were reviews refused by --min-known
BROKEN_PIPE_STATUS = 128 + 13  # a process ended by SIGPIPE, as shells report it
INTERRUPTED_STATUS = 128 + 2  # a process ended by SIGINT (Ctrl-C), as shells report it


def json_line(body: dict) -> str:
    """One JSON object, non-ASCII text as it is, but every control or format character escaped:
    json.dumps escapes U+0000-U+001F only, not DEL, the C1 controls (U+009B is a CSI) or U+202E."""
    return json_printable(json.dumps(body, ensure_ascii=False))


def read_lines(stream, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Each line of a binary stream, or None for a line over `limit` bytes (read past in chunks)."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # skip the rest of the over-long line
            line = stream.readline(limit)
        yield None


def lines_of(stream, jsonl: bool) -> Iterator[tuple[str | None, str | None]]:
    """(text, error) for each line of a binary stream, read one line at a time."""
    for raw in read_lines(stream):
        if raw is None:
            yield None, f"line longer than {MAX_LINE_BYTES:,} bytes"
            continue
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as error:
            yield None, f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start})"
            continue
        if not line.strip():  # a blank line is not a review: skipped, not counted
            continue
        if not jsonl:
            yield line, None
            continue
        try:
            value = json.loads(line)
        except ValueError as error:  # bad JSON, or a number too long to convert
            yield None, f"not JSON ({getattr(error, 'msg', error)})"
            continue
        except RecursionError:
            yield None, "not JSON (nested too deeply)"
            continue
        text = value.get("text") if isinstance(value, dict) else value
        yield (text, None) if isinstance(text, str) else (None, 'expected a JSON string or {"text": "..."}')


class Progress:
    """A one-line progress meter on stderr for long files, shown only on a terminal."""

    def __init__(self, stream, total_bytes: int | None):
        self.stream, self.total = stream, total_bytes
        self.enabled = bool(total_bytes) and sys.stderr.isatty()
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.enabled and self.count % 100 == 0:
            percent = 100 * self.stream.tell() / self.total
            print(f"\r{self.count:,} reviews, {percent:5.1f} %", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(f"\r{self.count:,} reviews, done   ", file=sys.stderr)


def format_result(index: int, text: str | None, prediction, error: str | None, style: str) -> str:
    if style == "json":
        body = {"index": index, "error": error} if error else {"index": index, **prediction.to_dict()}
        return json_line(body)
    if error:
        return f"{index}\terror: {printable(error)}"
    preview = printable(" ".join(text.split())[:70])
    return f"{index}\t{printable(prediction.label)}\t{prediction.score:.3f}\t{known_column(prediction)}\t{preview}"


def known_column(prediction) -> str:
    """`known 3/4`: the words the model knows of those it read; `: too few` when the answer warns."""
    known = prediction.coverage
    return f"known {known.known_words}/{known.words}" + ": too few" * bool(prediction.warning)


def answer_stream(answer, render, items, out) -> tuple[int, int]:
    """Answer (text, error) items with `answer(text)` (classify or explain), write `render(index, text,
    result, error)` for each; return how many failed, and how many of those were refused by --min-known."""
    failed = refused = 0
    for index, (text, error) in enumerate(items):
        result = None
        if error is None:
            try:
                result = answer(text)
            except (ValueError, TypeError) as problem:
                error = str(problem)
                refused += isinstance(problem, TooFewKnownWords)
        failed += error is not None
        print(render(index, text, result, error), file=out)
    return failed, refused


# Effects (changes in a label's probability) smaller than this stay plain; from the second, a word is
# bold (or, without colour, followed by its effect).
EFFECT_SHOWN, EFFECT_STRONG = 0.01, 0.05
# The explain page's blue and orange (runtime/explain.css) in the 256-colour palette, light enough
# to read on a dark terminal too: blue toward Explanation.colour_label, orange the other way.
TOWARD_COLOUR, AWAY_COLOUR = "38;5;33", "38;5;208"
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)  # the dataset's line breaks


def format_explanation(
    index: int, text: str | None, explanation: Explanation | None, error: str | None, style: str, colour: bool
) -> str:
    if style == "json":
        body = {"index": index, "error": error} if error else {"index": index, **explanation.to_dict()}
        return json_line(body)
    if error:
        return f"{index}\terror: {printable(error)}"

    def shown(piece: str) -> str:  # the review's own line breaks and tabs stay; other controls are escaped
        return _LINE_BREAK.sub("\n", printable(piece, keep="\n\t"))

    parts, position = [], 0
    if explanation.truncated_words and explanation.words:  # the words before the last tokens were not read
        position = explanation.words[0].start
        parts.append(f"\033[2m{shown(text[:position])}\033[0m" if colour else shown(text[:position]))
    for word in explanation.words:
        if word.start < position:  # a span shared with the last word (a character that made two words)
            continue
        leaning = explanation.leaning(word)
        parts += [shown(text[position : word.start]), _shade(shown(text[word.start : word.end]), leaning, colour)]
        position = word.end
    parts.append(shown(text[position:]))
    label = printable(explanation.label)
    others = ", ".join(f"{printable(name)} {value:.3f}" for name, value in explanation.probabilities.items())
    strongest = sorted((word for word in explanation.words if word.effect is not None), key=lambda w: -abs(w.effect))[
        :3
    ]
    lines = [
        "".join(parts).strip(),
        f"-> {label} {explanation.score:.3f} ({others}); {explanation.coverage}",
        "   strongest: "
        + ", ".join(f"{printable(text[word.start : word.end])} {explanation.leaning(word):+.2f}" for word in strongest),
        "   " + legend(explanation, colour),
    ]
    cut = explanation.truncated_words
    if cut:
        lines.append(
            f"   the first {cut} words were not read: the model reads a review's last tokens" + " (dimmed)" * colour
        )
    if explanation.warning:
        lines.append(f"   warning: {explanation.warning}")
    return f"{index}\t" + "\n".join(lines)


def legend(explanation: Explanation, colour: bool) -> str:
    """What the colours (or, without colour, the signed figures) of an explained review mean."""
    toward, other = printable(explanation.colour_label), explanation.other_label
    away = f"toward {printable(other)}" if other is not None else f"away from {toward}"
    if colour:
        blue, orange = f"\033[{TOWARD_COLOUR}mblue\033[0m", f"\033[{AWAY_COLOUR}morange\033[0m"
        return f"colours: {blue} toward {toward}, {orange} {away}; bold from {EFFECT_STRONG}"
    return f"effects are changes in the probability of {toward}: + toward {toward}, - {away}"


def _shade(shown: str, leaning: float | None, colour: bool) -> str:
    """One word of the review as the terminal shows it, by its effect toward Explanation.colour_label."""
    if leaning is None or abs(leaning) < EFFECT_SHOWN:
        return shown
    if not colour:
        return f"{shown}({leaning:+.2f})" if abs(leaning) >= EFFECT_STRONG else shown
    code = ("1;" if abs(leaning) >= EFFECT_STRONG else "") + (TOWARD_COLOUR if leaning > 0 else AWAY_COLOUR)
    return f"\033[{code}m{shown}\033[0m"


class WarningLines:
    """Python warnings as `warning: ...` lines on stderr, one per category however often it is
    raised (an unverified artifact warns for each artifact and each classifier loaded), with no
    source line: the CLI's user did not write the code that warned."""

    def __init__(self):
        self.shown: set[type] = set()

    def show(self, message, category: type = UserWarning, *_details, **_more) -> None:
        if category not in self.shown:
            self.shown.add(category)
            print(f"warning: {printable(str(message))}", file=sys.stderr)

    @contextlib.contextmanager
    def installed(self):
        """Every warning raised in the block goes through `show` (the filters decide which are raised)."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", UnverifiedArtifactWarning)  # `show` says it once
            warnings.showwarning = self.show
            yield self


class InputError(Exception):
    """A --file that cannot be read as reviews."""


def open_input(path: Path) -> tuple[BinaryIO, int | None]:
    """The --file opened for reading, and its size if it is a regular file (for the progress meter).

    A regular file or a pipe (`--file <(zcat reviews.gz)`, /dev/stdin from a pipe) is read; a
    folder, or a device such as /dev/zero (endless) or a terminal, is refused with what to give.
    `-` is standard input, as for the review arguments."""
    if str(path) == "-":
        return sys.stdin.buffer, None
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder; give a file of reviews, one a line")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise InputError(f"{path}: not a file or a pipe (a device); give a file, a pipe, or '-' for standard input")
    try:
        stream = open(path, "rb")
    except OSError as error:
        raise InputError(f"{path}: {error.strerror}") from None
    return stream, os.fstat(stream.fileno()).st_size if stat.S_ISREG(mode) else None


def inputs(args, file: BinaryIO | None, size: int | None) -> Iterator[tuple[str | None, str | None]]:
    """Every review asked for, in order: the --file's lines, then the arguments ('-': stdin)."""
    if file is not None:
        progress = Progress(file, size)
        for item in lines_of(file, args.jsonl):
            yield item
            progress.step()
        progress.close()
    for review in args.reviews:
        if review == "-":
            yield from lines_of(sys.stdin.buffer, args.jsonl)
        else:
            yield review, None


def main(argv: list[str] | None = None) -> int:
    """The command; Ctrl-C ends it with one line and status 130 instead of a traceback."""
    try:
        with WarningLines().installed():
            return run(argv)
    except KeyboardInterrupt:
        clear = "\r\033[K" if sys.stderr.isatty() else ""  # over the progress meter, if one is shown
        print(f"{clear}interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS


def run(argv: list[str] | None) -> int:
    parser = cli.parser("runtime.predict", __doc__.split("\n")[0])
    parser.add_argument(
        "reviews",
        nargs="*",
        help="review texts; '-' (or none, with piped input) reads one review a line from standard input",
    )
    parser.add_argument(
        "--file", type=Path, help="read one review a line from this file (or pipe); blank lines are skipped"
    )
    parser.add_argument("--jsonl", action="store_true", help='input lines are JSON: "text" or {"text": "..."}')
    parser.add_argument(
        "--explain", action="store_true", help="show the model's opinion after every word and each word's effect"
    )
    parser.add_argument(
        "--format", choices=("json", "text"), help="output format (default: json; with --explain on a terminal, text)"
    )
    parser.add_argument(
        "--min-known",
        type=cli.share,
        default=0.0,
        metavar="SHARE",
        help="refuse a review (an error on its line, exit status 4) when the model knows fewer than this "
        "share of the words it read, 0 to 1 (default: none refused; every answer warns under 0.5)",
    )
    model_options.add_model_arguments(parser, threads=True)
    args = parser.parse_args(argv)
    if not args.reviews and args.file is None:
        if sys.stdin is None or sys.stdin.isatty():
            parser.error("give review texts, '-' for standard input, or --file")
        args.reviews = ["-"]
    file = size = None
    if args.file is not None:
        try:
            file, size = open_input(args.file)
        except InputError as error:
            print(f"error: {printable(str(error))}", file=sys.stderr)
            return 1
    with file or contextlib.nullcontext():
        return classify_inputs(args, model_options.from_arguments(args), inputs(args, file, size))


def classify_inputs(args, model: ClassifierOptions, items) -> int:
    """Load the model the options name (its warnings: see WarningLines) and answer every item."""
    try:
        classifier = model_options.load_classifier(model)
    except (bundle.BundleError, backends.BackendError, ValueError, OSError) as error:
        print(f"error: {printable(str(error))}", file=sys.stderr)
        return 1
    if args.explain:
        try:
            check_running_opinion(classifier.config)
        except NoRunningOpinion as error:  # before any input is read: one line, not one per review
            classifier.close()
            print(f"error: {error}", file=sys.stderr)
            return NO_RUNNING_OPINION_STATUS

    style = args.format or ("text" if args.explain and sys.stdout.isatty() else "json")
    try:
        with classifier:
            if args.explain:
                colour = style == "text" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
                failed, refused = answer_stream(
                    functools.partial(classifier.explain, min_known=args.min_known),
                    lambda i, t, r, e: format_explanation(i, t, r, e, style, colour),
                    items,
                    sys.stdout,
                )
            else:
                failed, refused = answer_stream(
                    functools.partial(classifier.classify, min_known=args.min_known),
                    lambda i, t, r, e: format_result(i, t, r, e, style),
                    items,
                    sys.stdout,
                )
        sys.stdout.flush()
    except (bundle.BundleError, backends.BackendError) as error:  # explain's per-step artifact
        print(f"error: {printable(str(error))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader has gone (`| head -1`): stop quietly. Point stdout at /dev/null so that the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    if refused:
        print(
            f"error: {refused} review(s) refused: the model knows under {args.min_known:.0%} of their words (--min-known)",
            file=sys.stderr,
        )
    if failed > refused:
        print(f"error: {failed - refused} review(s) could not be classified", file=sys.stderr)
        return 1
    return TOO_FEW_KNOWN_STATUS if refused else 0


if __name__ == "__main__":
    sys.exit(main())
