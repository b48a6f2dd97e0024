"""Print the systemd unit that runs the HTTP server, for the environment this runs in.

    /opt/imdb-sentiment/venv/bin/python -m runtime.service > imdb-sentiment.service

The unit (runtime/imdb-sentiment.service, installed with the package) is printed with its
`ExecStart` pointing at the `imdb-sentiment-serve` of the running interpreter's environment.
docs/raspberry-pi.md installs it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import sysconfig
import unicodedata
from pathlib import Path

UNIT = Path(__file__).resolve().parent / "imdb-sentiment.service"
SERVER = "imdb-sentiment-serve"
TEMPLATE_PREFIX = "ExecStart=/opt/imdb-sentiment/venv/bin/"


def server_path() -> Path:
    """The imdb-sentiment-serve script of the running interpreter's environment."""
    return Path(sysconfig.get_path("scripts")) / SERVER


# Characters a path may have unquoted on a unit's command line; any other gets it quoted.
_PLAIN_WORD = re.compile(r"[\w/.+@:,=%-]+")


def command_word(path: Path) -> str:
    """`path` as the first word of ExecStart, read back by systemd as that path (systemd.syntax,
    systemd.service): `%` doubled (a specifier: %h is the home folder), quoted if it has a space
    or another character word splitting reads. ValueError for a path no unit can run: a control
    character (a newline would start a line of its own, such as User=root), a quote or backslash
    (systemd refuses them in a program's name) or a name that is not UTF-8."""
    text = os.fsdecode(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{text!r}: the path is not valid UTF-8; a unit file cannot hold it") from None
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in text):
        raise ValueError(f"{text!r}: the path holds a control character; a unit file cannot hold it")
    if any(character in text for character in "\"'\\"):
        raise ValueError(f"{text!r}: the path holds a quote or a backslash; systemd refuses such a program name")
    text = text.replace("%", "%%")  # $ is not expanded in the program's own name
    return text if _PLAIN_WORD.fullmatch(text) else f'"{text}"'


def unit_text(server: Path | None = None) -> str:
    """The unit file with ExecStart running `server` (default: this environment's); ValueError if
    its path cannot be written in a unit (`command_word`)."""
    server = server or server_path()
    word = command_word(server)
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith(TEMPLATE_PREFIX + SERVER + " ")]
    if len(starts) != 1:
        raise RuntimeError(f"{UNIT}: expected one line starting {TEMPLATE_PREFIX + SERVER!r}")
    arguments = lines[starts[0]][len(TEMPLATE_PREFIX + SERVER) :]
    lines[starts[0]] = f"ExecStart={word}{arguments}"
    return "\n".join(lines) + "\n"


def update_timer_text(python: str | None = None) -> str:
    """imdb-sentiment-update.service and .timer (one file, split at the marker lines): runtime.update
    every 6 hours with a random delay, so fifty devices do not hit the repository at once
    (docs/fleet.md). Edit REPOSITORY_URL; the key and root are copied to /etc/imdb-sentiment/."""
    python = python or sys.executable
    return f"""# --- /etc/systemd/system/imdb-sentiment-update.service
[Unit]
Description=Update the sentiment model from its TUF repository
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={python} -m runtime.update --repository https://REPOSITORY_URL --models /var/lib/imdb-sentiment \\
    --trust /etc/imdb-sentiment/release.pub.pem --root /etc/imdb-sentiment/1.root.json
TimeoutStartSec=15min
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/imdb-sentiment

# --- /etc/systemd/system/imdb-sentiment-update.timer
[Unit]
Description=Check for a new sentiment model

[Timer]
OnBootSec=5min
OnUnitActiveSec=6h
RandomizedDelaySec=30min
Persistent=true

[Install]
WantedBy=timers.target
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.service",
        description="Print the systemd unit of the sentiment server, its ExecStart set to the "
        "imdb-sentiment-serve of this Python's environment. Redirect it to a file and "
        "copy that to /etc/systemd/system/ (docs/raspberry-pi.md).",
    )
    parser.add_argument("--update-timer", action="store_true", help="print the model updater's service and timer")
    if parser.parse_args(argv).update_timer:
        sys.stdout.write(update_timer_text())
        return 0
    server = server_path()
    try:
        text = unit_text(server)
    except ValueError as error:
        print(f"error: {error}: create the environment under a plain path such as /opt", file=sys.stderr)
        return 1
    if not server.is_file():
        print(f"warning: {server} does not exist: install the package into this environment first", file=sys.stderr)
    if server.parts[:2] in (("/", "home"), ("/", "root")):
        print(
            f"warning: {server} is under {Path(*server.parts[:3])}, which the unit's "
            "ProtectHome=yes hides from the service: create the environment under /opt instead",
            file=sys.stderr,
        )
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
