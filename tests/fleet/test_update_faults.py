"""The updater's faults of issue 37 that need a real process or a real disk: a repository that
trickles bytes (slow retrieval), `kill -9` of the updater during the download and during the
switch of `current`, a full disk. After each, the device's server goes on answering from the old
version, no half-written version is left, and the next run completes (and the server follows)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runtime import update
from tests.conftest import ROOT
from tests.fleet.test_update import fleet, state  # noqa: F401  (fleet is a fixture, used by name)
from tests.runtime.serving.harness import TEXTS, ServerProcess

TRICKLE_PAUSE = 0.1  # seconds between the bytes of a trickled target: never a 30 s gap (TUF's timeout)


class TrickleHandler(SimpleHTTPRequestHandler):
    """Metadata as any web server sends it; a target one byte at a time, for ever in practice."""

    started: threading.Event

    def do_GET(self) -> None:
        if not self.path.startswith("/targets/"):
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.started.set()
        try:
            for index in range(len(data)):
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                time.sleep(TRICKLE_PAUSE)
        except OSError:  # the client gave up or was killed
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def trickle(fleet):  # noqa: F811
    """A web server of the same repository that trickles targets: (its URL, set once a target is being sent)."""
    started = threading.Event()
    handler = type("Handler", (TrickleHandler,), {"started": started})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(fleet["repository"])))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", started
    server.shutdown()
    server.server_close()


def updater(fleet, url: str, *extra: str, launcher: tuple[str, ...] = ("-m", "runtime.update")):  # noqa: F811
    """`python -m runtime.update` as a process (the device's timer runs it so), not yet waited for."""
    argv = ["--repository", url, "--models", str(fleet["device"]), "--trust", str(fleet["trust"]), *extra]
    return subprocess.Popen([sys.executable, *launcher, *argv], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def serving(server) -> str:
    status, _, answer = server.request("POST", "/v1/predict", {"texts": [TEXTS[0]]})
    assert status == 200, answer
    return answer["model_version"]


def follow(tmp_path, fleet):  # noqa: F811
    """The device's server, following its models folder closely."""
    args = ("--models", str(fleet["device"]), "--watch-interval", "0.1", "--workers", "1", "--quiet")
    return ServerProcess(tmp_path, *args)


def wait_until_serving(server, version: str) -> None:
    for _ in range(600):
        if serving(server) == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server did not follow to version {version}: {server.stderr}")


def test_a_trickling_repository_is_given_up_and_nothing_is_left(fleet, trickle):  # noqa: F811
    url, started = trickle
    assert fleet["run"]() == 0
    fleet["publish"]()
    process = updater(fleet, url, "--timeout", "3")
    try:
        status = process.wait(90)  # without the deadline: the 11 MB target at 10 bytes a second, for days
    finally:
        process.kill()
    assert started.is_set()  # it was inside the download when it gave up
    assert status == 1 and process.stderr.read().strip() == "error: the update did not finish within 3 s (--timeout)"
    assert state(fleet["device"]) == (2, [2])


def test_kill_9_during_the_download_keeps_the_old_version_serving(fleet, trickle, tmp_path):  # noqa: F811
    url, started = trickle
    assert fleet["run"]() == 0
    server = follow(tmp_path, fleet)
    try:
        fleet["publish"]()
        process = updater(fleet, url)
        assert started.wait(60), process.stderr.read()
        process.send_signal(signal.SIGKILL)
        assert process.wait(30) == -signal.SIGKILL
        assert state(fleet["device"]) == (2, [2]) and serving(server) == "2"
        assert fleet["run"]() == 0  # the next run, from a repository that answers
        assert state(fleet["device"]) == (3, [2, 3])
        wait_until_serving(server, "3")
    finally:
        assert server.stop() == 0


# Runs runtime.update with os.symlink or os.replace wrapped: at the point named, the process sends
# itself SIGKILL, as `kill -9` at that instant would.
KILL_AT = """
import os, signal, sys
from pathlib import Path
point = sys.argv.pop(1)
symlink, replace = os.symlink, os.replace
def kill(): os.kill(os.getpid(), signal.SIGKILL)
def killing_symlink(source, target, *args, **kwargs):
    if point == "before-the-new-link" and str(source).startswith("versions"):  # not TUF's root.json link
        kill()
    symlink(source, target, *args, **kwargs)
def killing_replace(source, target, *args, **kwargs):
    if point == "before-the-rename" and Path(target).name == "current":
        kill()
    replace(source, target, *args, **kwargs)
os.symlink, os.replace = killing_symlink, killing_replace
from runtime import update
sys.exit(update.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("point", ["before-the-new-link", "before-the-rename"])
def test_kill_9_during_the_switch_keeps_the_old_version_serving(fleet, tmp_path, point):  # noqa: F811
    assert fleet["run"]() == 0
    server = follow(tmp_path, fleet)
    try:
        fleet["publish"]()
        process = updater(fleet, fleet["url"], launcher=("-c", KILL_AT, point))
        assert process.wait(120) == -signal.SIGKILL, process.stderr.read()
        assert update.installed(fleet["device"]) == [2, 3]  # killed at the switch: version 3 was in place
        assert (
            update.current_version(fleet["device"]) == 2 and (fleet["device"] / "current" / "manifest.json").is_file()
        )
        assert serving(server) == "2"
        assert fleet["run"]() == 0
        assert state(fleet["device"]) == (3, [2, 3])  # and what the killed run left is gone
        wait_until_serving(server, "3")
    finally:
        assert server.stop() == 0


@pytest.fixture
def small_disk(fleet):  # noqa: F811
    """The device folder on a tmpfs of its own (mounting one needs root: skipped otherwise); a
    function that sets its size in bytes."""
    device = fleet["device"]
    device.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(device)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode().strip()}")

    def resize(size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(device)], check=True)

    yield resize
    subprocess.run(["umount", "-l", str(device)], check=True)


def used_bytes(folder: Path) -> int:
    usage = shutil.disk_usage(folder)
    return usage.total - usage.free


@pytest.mark.parametrize("full", ["during-the-download", "during-the-unpacking"])
def test_a_full_disk_leaves_the_old_version_and_frees_what_it_wrote(fleet, small_disk, full, capsys):  # noqa: F811
    device = fleet["device"]
    assert fleet["run"]() == 0
    version = sum(path.stat().st_size for path in (device / "versions" / "2").iterdir())
    fleet["publish"]()
    used = used_bytes(device)
    # Room for part of the download, or for the download and part of its unpacking.
    small_disk(used + (version // 2 if full == "during-the-download" else version * 3 // 2))
    assert fleet["run"]() == 1
    assert "No space left on device" in capsys.readouterr().err
    # All it wrote is removed: no partial download or version (the metadata TUF refreshed remains).
    assert state(device) == (2, [2]) and used_bytes(device) < used + version // 10
    small_disk(64 << 20)
    assert fleet["run"]() == 0
    assert state(device) == (3, [2, 3])


def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error(capsys):
    for value in ("0", "-1", "nan", "inf"):
        with pytest.raises(SystemExit) as exit:
            update.main(["--models", "/nonexistent", "--rollback", "--timeout", value])
        assert exit.value.code == 2 and "--timeout must be a positive number" in capsys.readouterr().err
    assert not os.path.exists("/nonexistent")
