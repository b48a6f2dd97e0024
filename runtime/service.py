"""Print the systemd unit that runs the HTTP server, for the environment this runs in.

    /opt/imdb-sentiment/venv/bin/python -m runtime.service > imdb-sentiment.service

The unit (runtime/imdb-sentiment.service, installed with the package) is printed with its
`ExecStart` pointing at the `imdb-sentiment-serve` of the running interpreter's environment.
docs/raspberry-pi.md installs it.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

UNIT = Path(__file__).resolve().parent / "imdb-sentiment.service"
SERVER = "imdb-sentiment-serve"
TEMPLATE_PREFIX = "ExecStart=/opt/imdb-sentiment/venv/bin/"


def server_path() -> Path:
    """The imdb-sentiment-serve script of the running interpreter's environment."""
    return Path(sysconfig.get_path("scripts")) / SERVER


def unit_text(server: Path | None = None) -> str:
    """The unit file with ExecStart running `server` (default: this environment's)."""
    server = server or server_path()
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith(TEMPLATE_PREFIX + SERVER + " ")]
    if len(starts) != 1:
        raise RuntimeError(f"{UNIT}: expected one line starting {TEMPLATE_PREFIX + SERVER!r}")
    arguments = lines[starts[0]][len(TEMPLATE_PREFIX + SERVER) :]
    lines[starts[0]] = f"ExecStart={server}{arguments}"
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.service",
        description="Print the systemd unit of the sentiment server, its ExecStart set to the "
        "imdb-sentiment-serve of this Python's environment. Redirect it to a file and "
        "copy that to /etc/systemd/system/ (docs/raspberry-pi.md).",
    )
    parser.parse_args(argv)
    server = server_path()
    if not server.is_file():
        print(f"warning: {server} does not exist: install the package into this environment first", file=sys.stderr)
    if server.parts[:2] in (("/", "home"), ("/", "root")):
        print(
            f"warning: {server} is under {Path(*server.parts[:3])}, which the unit's "
            "ProtectHome=yes hides from the service: create the environment under /opt instead",
            file=sys.stderr,
        )
    sys.stdout.write(unit_text(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
