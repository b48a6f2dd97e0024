"""`python -m runtime.service` prints a valid systemd unit for the environment it runs in: the
sections systemd needs, and an ExecStart running that environment's imdb-sentiment-serve with
arguments the server takes (docs/raspberry-pi.md installs it)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from runtime import service


def parse_unit(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit line: {line!r}"
        key, value = line.split("=", 1)
        current[key.strip()] = value.strip()
    return sections


def printed_unit(tmp_path) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-m", "runtime.service"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def test_the_printed_unit_runs_this_environments_server(tmp_path):
    text, _ = printed_unit(tmp_path)
    unit = parse_unit(text)
    assert {"Unit", "Service", "Install"} <= set(unit)
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    command = unit["Service"]["ExecStart"].split()
    server = Path(sysconfig.get_path("scripts")) / "imdb-sentiment-serve"
    assert command[0] == str(server) and Path(command[0]).is_absolute()
    assert server.is_file(), "the package is not installed in this environment"
    assert unit["Service"]["User"] not in ("", "root")
    pytest.importorskip("uvicorn", reason="the server's own argument parser needs the serve extra")
    from runtime.serve import parse_arguments

    arguments = parse_arguments(command[1:])
    assert arguments.host == "127.0.0.1" and arguments.grace < int(unit["Service"]["TimeoutStopSec"])


def test_only_exec_start_changes():
    template = service.UNIT.read_text().splitlines()
    printed = service.unit_text(Path("/srv/venv/bin/imdb-sentiment-serve")).splitlines()
    changed = [(a, b) for a, b in zip(template, printed) if a != b]
    assert len(template) == len(printed) and len(changed) == 1
    assert changed[0][1].startswith("ExecStart=/srv/venv/bin/imdb-sentiment-serve --host 127.0.0.1 ")


def test_a_home_environment_gets_a_warning(monkeypatch, capsys):
    """ProtectHome=yes hides /home and /root from the service: the unit would not start."""
    monkeypatch.setattr(service, "server_path", lambda: Path("/home/pi/venv/bin/imdb-sentiment-serve"))
    assert service.main([]) == 0
    out, err = capsys.readouterr()
    assert "ExecStart=/home/pi/venv/bin/imdb-sentiment-serve " in out and "ProtectHome" in err


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    text, _ = printed_unit(tmp_path)
    path = tmp_path / "imdb-sentiment.service"
    path.write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True)
    # Outside a booted systemd (a container) verify may still run; only complaints about the unit count.
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if "imdb-sentiment.service" in line]
    assert not complaints, "\n".join(complaints)


# Issue #33, finding 8: the environment's path is written into the unit as that path, never as
# more of the unit (a newline), more words (a space) or a specifier (%h) or variable ($HOME).
ODD_FOLDERS = ["my venv", "100%h", "$HOME", "semi;colon", "star*[x] #1", "ça été"]


def exec_start_path(text: str) -> str:
    """The first word of ExecStart as systemd reads it: quotes and backslash escapes (shlex's POSIX
    rules agree on these), then %% for a literal %."""
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))[0].replace("%%", "%")


@pytest.mark.parametrize("folder", ODD_FOLDERS)
def test_an_odd_environment_path_is_written_as_that_path(folder):
    server = Path("/opt") / folder / "bin" / "imdb-sentiment-serve"
    text = service.unit_text(server)
    assert exec_start_path(text) == str(server)
    assert len(text.splitlines()) == len(service.UNIT.read_text().splitlines())


@pytest.mark.parametrize(
    "folder, problem",
    [
        *((name, "control character") for name in ["evil\nUser=root", "cr\rhere", "bell\x07", "esc\x1b[2J", "l\u2028"]),
        *((name, "quote or a backslash") for name in ['say "hi"', "back\\slash", "it's"]),
    ],
)
def test_a_path_no_unit_can_run_is_refused(folder, problem, monkeypatch, capsys):
    server = Path("/opt") / folder / "bin" / "imdb-sentiment-serve"
    with pytest.raises(ValueError, match=problem):
        service.unit_text(server)
    monkeypatch.setattr(service, "server_path", lambda: server)
    assert service.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and "User=root\n" not in err


def test_a_path_that_is_not_utf8_is_refused():
    with pytest.raises(ValueError, match="not valid UTF-8"):
        service.unit_text(Path(os.fsdecode(b"/opt/\xff/bin/imdb-sentiment-serve")))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("folder", ODD_FOLDERS)
def test_systemd_runs_the_server_of_an_odd_path(tmp_path, folder):
    """systemd-analyze verify checks that ExecStart's program exists: it exists only at the real path."""
    server = tmp_path / folder / "bin" / "imdb-sentiment-serve"
    server.parent.mkdir(parents=True)
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    path = tmp_path / "imdb-sentiment.service"
    path.write_text(service.unit_text(server))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if "imdb-sentiment.service" in line]
    assert not complaints, "\n".join(complaints)
