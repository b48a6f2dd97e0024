"""Text shown to a person (a terminal, a log) with its control and format characters (Unicode Cc
and Cf: ESC, CSI, a newline, bidi overrides) as escapes, so that a review, a manifest's name or a
client's path is shown, not obeyed: it cannot colour or clear the terminal, nor forge a line.
The CLI (runtime/predict.py) and the server's logs (runtime/serving/server.py) both use it.
"""

from __future__ import annotations

import unicodedata

_CONTROL = ("Cc", "Cf")  # control characters (ESC, BEL, CSI) and format ones (bidi overrides, zero-width)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, keep: str = "") -> str:
    """`text` safe to print on a terminal: control and format characters (but those in `keep`)
    as Python escapes, so that a review's ESC sequences or bidi overrides are shown, not obeyed."""
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(_escape(c) if c not in keep and unicodedata.category(c) in _CONTROL else c for c in text)


def _json_escape(character: str) -> str:
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells a character outside the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_printable(line: str) -> str:
    """JSON text (as json.dumps writes it) with its control and format characters as JSON escapes:
    outside strings it has none, so it stays the same JSON."""
    if line.isprintable():
        return line
    return "".join(_json_escape(c) if unicodedata.category(c) in _CONTROL else c for c in line)
