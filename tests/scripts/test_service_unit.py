"""`python -m runtime.service` prints a valid systemd unit for the environment it runs in: the
sections systemd needs, and an ExecStart running that environment's imdb-sentiment-serve with
arguments the server takes (docs/raspberry-pi.md installs it)."""

from __future__ import annotations

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
