"""Each benchmark harness owns one section of BENCHMARKS.md, between `<!-- begin:NAME -->` and
`<!-- end:NAME -->`; this rewrites that section and leaves the rest of the file as it is."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, name: str, section: str) -> None:
    """Replace section `name` of `path` with `section` (which carries its own markers), or add it at the end."""
    text = path.read_text() if path.is_file() else ""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    if begin in text and end in text:
        start, stop = text.index(begin), text.index(end) + len(end)
        text = text[:start] + section.rstrip("\n") + text[stop:]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    path.write_text(text)
