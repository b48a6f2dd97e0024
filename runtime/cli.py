"""What every command line of the project shares: its name in --help and how options show defaults."""

from __future__ import annotations

import argparse
import os
import sys


def program_name(module: str) -> str:
    """The name the user typed: the console script's (imdb-sentiment), else `python -m module`."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"python -m {module}" if name in ("", "-c") or name.endswith(".py") else name


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless there is none to show (None, a flag off, none of a list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, (), argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def share(text: str) -> float:
    """An option's share of a whole (--min-known), 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share from 0 to 1 (0.5: half), got {text}")
    return value


def parser(module: str, description: str) -> argparse.ArgumentParser:
    import runtime

    parser = argparse.ArgumentParser(prog=program_name(module), description=description, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {runtime.__version__}")
    return parser
