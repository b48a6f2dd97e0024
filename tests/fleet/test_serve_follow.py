"""The real server over loopback, serving a models folder as runtime.update writes it
(`--models DIR`): it swaps to the version `current` points at on a switch of the link, on SIGHUP
and on the OIP load endpoint; a broken version leaves the old one serving and says why; requests
in flight finish on the version they started on, and none fails while versions swap under 64
clients. Only answers and errors are asserted, never times."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from export import sign
from runtime import bundle, update
from tests.conftest import ROOT
from tests.fleet.conftest import small_bundle
from tests.runtime.serving.harness import LONG_TEXT, TEXTS, ServerProcess, expected_predictions

MODEL = "imdb-lstm"
LOAD = f"/v2/repository/models/{MODEL}/load"
NEVER = "3600"  # a --watch-interval that leaves the swap to SIGHUP or the load endpoint


@pytest.fixture
def models(tmp_path):
    """MODELS/versions/1 and 2 (the same small bundle twice), `current` -> versions/1."""
    folder = tmp_path / "device"
    small_bundle(folder / "versions" / "1")
    shutil.copytree(folder / "versions" / "1", folder / "versions" / "2")
    update.switch(folder, 1)
    return folder


def serve(tmp_path, models, *extra, watch=NEVER):
    return ServerProcess(
        tmp_path, "--models", str(models), "--watch-interval", watch, "--workers", "1", "--quiet", *extra
    )


def version_of(server, path="/v1/predict", body=None) -> str:
    status, _, answer = server.request("POST", path, body or {"texts": [TEXTS[0]]})
    assert status == 200, answer
    return answer["model_version"]


def wait_for_version(server, version: str) -> dict:
    """/v1/model once it says `version` (the watch is asynchronous); bounded, never timed."""
    for _ in range(600):
        model = server.request("GET", "/v1/model")[2]
        if model["version"] == version:
            return model
        time.sleep(0.05)
    raise AssertionError(f"still serving {model['version']}: {server.stderr}")


def test_a_switch_of_current_is_followed(tmp_path, models):
    server = serve(tmp_path, models, watch="0.1")
    try:
        assert version_of(server) == "1" and server.metric("imdb_sentiment_model_version") == 1
        update.switch(models, 2)
        model = wait_for_version(server, "2")
        assert model["last_reload"]["outcome"] == "swapped" and model["last_reload"]["trigger"] == "watch"
        assert version_of(server) == "2" and server.metric("imdb_sentiment_model_version") == 2
        assert server.metric('imdb_sentiment_model_reloads_total{outcome="swapped"}') == 1
    finally:
        assert server.stop() == 0
    assert "swapped: now serving version 2 (watch;" in server.stderr and "Traceback" not in server.stderr


def test_sighup_swaps(tmp_path, models):
    server = serve(tmp_path, models)
    try:
        update.switch(models, 2)
        assert version_of(server) == "1"  # the watch is off: nothing moves by itself
        server.process.send_signal(signal.SIGHUP)
        assert wait_for_version(server, "2")["last_reload"]["trigger"] == "SIGHUP"
        assert version_of(server) == "2"
    finally:
        assert server.stop() == 0


def test_the_load_endpoint_swaps_and_every_answer_names_the_version(tmp_path, models):
    server = serve(tmp_path, models)
    try:
        infer = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXTS[0]]}]}
        assert version_of(server, f"/v2/models/{MODEL}/infer", infer) == "1"
        update.switch(models, 2)
        assert server.request("POST", LOAD)[::2] == (200, {"name": MODEL, "version": "2", "outcome": "swapped"})
        assert server.request("POST", LOAD)[::2] == (200, {"name": MODEL, "version": "2", "outcome": "unchanged"})
        assert version_of(server, f"/v2/models/{MODEL}/infer", infer) == "2"
        assert version_of(server, f"/v2/models/{MODEL}/versions/2/infer", infer) == "2"
        assert server.request("GET", f"/v2/models/{MODEL}")[2]["versions"] == ["2"]
        assert server.request("GET", f"/v2/models/{MODEL}/versions/1")[0] == 404
        assert server.request("POST", "/v2/repository/models/another/load")[0] == 404
    finally:
        assert server.stop() == 0


def test_the_load_endpoint_of_a_server_of_one_folder_is_409(tmp_path, models):
    server = ServerProcess(tmp_path, "--model", str(models / "versions" / "1"), "--workers", "1", "--quiet")
    try:
        status, _, answer = server.request("POST", LOAD)
        assert status == 409 and "--models" in answer["error"]
    finally:
        assert server.stop() == 0


def corrupt(folder):
    with open(folder / "model.cached.tflite", "ab") as handle:
        handle.write(b"junk")


def rename(folder):
    manifest = bundle.read_manifest(folder)
    manifest["name"] = "another-model"
    bundle.write_manifest(folder, manifest)


def unlink(folder):
    shutil.rmtree(folder)


@pytest.mark.parametrize(
    "breakage, says",
    [
        (corrupt, "does not match the manifest"),
        (rename, "is model 'another-model'"),
        (unlink, "no such version"),
    ],
    ids=["corrupt-file", "another-model", "missing-folder"],
)
def test_a_broken_version_leaves_the_old_one_serving_and_says_why(tmp_path, models, breakage, says):
    server = serve(tmp_path, models)
    try:
        breakage(models / "versions" / "2")
        update.switch(models, 2)
        status, _, answer = server.request("POST", LOAD)
        assert status == 400 and says in answer["error"] and "1 serves on" in answer["error"]
        model = server.request("GET", "/v1/model")[2]
        assert model["version"] == "1" and model["last_reload"]["outcome"] == "failed"
        assert says in model["last_reload"]["error"] and str(tmp_path) not in model["last_reload"]["error"]
        assert server.metric('imdb_sentiment_model_reloads_total{outcome="failed"}') == 1
        assert server.metric("imdb_sentiment_model_version") == 1
        status, _, answer = server.request("POST", "/v1/predict", {"texts": [TEXTS[0]]})
        assert status == 200 and answer["model_version"] == "1"
        assert answer["predictions"] == expected_predictions(models / "versions" / "1", [TEXTS[0]])
    finally:
        assert server.stop() == 0
    assert any(line.startswith("error: version") and says in line for line in server.stderr_lines)


def test_a_version_signed_by_another_key_is_not_served(tmp_path, models, keys):
    for version, key in (("1", "release"), ("2", "stranger")):
        sign.main(["--model", str(models / "versions" / version), "--key", str(keys[key][0])])
    server = serve(tmp_path, models, "--trust", str(keys["release"][1]))
    try:
        update.switch(models, 2)
        status, _, answer = server.request("POST", LOAD)
        assert status == 400 and "signature not valid" in answer["error"]
        assert version_of(server) == "1"
    finally:
        assert server.stop() == 0


def test_a_request_in_flight_finishes_on_the_version_it_started_on(tmp_path, models):
    """A request of 64 long reviews on one classifier (a second or more) is in flight when version 2
    is swapped in: it answers from version 1, the next request from version 2."""
    server = serve(tmp_path, models)
    texts, answers = [LONG_TEXT] * 64, []
    try:
        client = threading.Thread(
            target=lambda: answers.append(server.request("POST", "/v1/predict", {"texts": texts}))
        )
        client.start()
        for _ in range(3000):  # until it is inside the app (the /metrics request itself is a second)
            if server.metric("imdb_sentiment_http_requests_in_flight") >= 2:
                break
            time.sleep(0.01)
        update.switch(models, 2)
        assert server.request("POST", LOAD)[2]["outcome"] == "swapped"
        assert version_of(server) == "2"
        client.join(120)
        status, _, answer = answers[0]
        assert status == 200 and answer["model_version"] == "1"
        assert answer["predictions"] == expected_predictions(models / "versions" / "1", texts)
    finally:
        assert server.stop() == 0


def test_no_request_fails_while_versions_swap_under_64_clients(tmp_path, models):
    server = serve(tmp_path, models, "--workers", "2")
    expected = expected_predictions(models / "versions" / "1", TEXTS[:8])
    stop, outcomes = threading.Event(), []

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        text = index % len(expected)
        body = json.dumps({"texts": [TEXTS[text]]}).encode()
        while not stop.is_set():
            try:
                connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                right = answer.get("predictions") == [expected[text]]
                outcomes.append((response.status, right, answer.get("model_version")))
            except (OSError, http.client.HTTPException, ValueError) as error:
                outcomes.append((repr(error), False, None))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.close()

    clients = [threading.Thread(target=client, args=(index,)) for index in range(64)]
    try:
        for thread in clients:
            thread.start()
        swaps = []
        for round in range(6):
            update.switch(models, 2 if round % 2 == 0 else 1)
            swaps.append(server.request("POST", LOAD)[::2])
            time.sleep(0.3)  # let requests run on the new version before the next swap
        stop.set()
        for thread in clients:
            thread.join(60)
    finally:
        stop.set()
        assert server.stop() == 0
    assert [answer["outcome"] for status, answer in swaps] == ["swapped"] * 6
    failed = [outcome for outcome in outcomes if outcome[:2] != (200, True)]
    assert outcomes and failed == []
    assert {version for _, _, version in outcomes} == {"1", "2"}


@pytest.mark.parametrize(
    "argv, status, says",
    [
        (["--models", "MODELS", "--model", "MODELS/versions/1"], 2, "--models and --model exclude each other"),
        (["--models", "EMPTY"], 1, "current: no such version (python -m runtime.update installs one)"),
    ],
    ids=["with-model", "no-current"],
)
def test_a_models_folder_that_cannot_be_served_is_one_error_line(tmp_path, models, argv, status, says):
    argv = [arg.replace("MODELS", str(models)).replace("EMPTY", str(tmp_path / "empty")) for arg in argv]
    done = subprocess.run(
        [sys.executable, "-m", "runtime.serve", "--port", "0", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == status and says in lines[-1] and lines[-1].startswith(("error:", "usage:", "python -m"))
    assert "Traceback" not in done.stderr
