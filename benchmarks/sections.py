"""What the benchmark harnesses share: the CPU they ran on, and their sections of BENCHMARKS.md.

Each harness owns one section, between `<!-- begin:NAME -->` and `<!-- end:NAME -->`;
`write_section` rewrites that section and leaves the rest of the file as it is."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    fallback = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), fallback)
    except OSError:
        return fallback


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
