"""The server against NVIDIA's `tritonclient` (the Open Inference Protocol's reference client, in the
dev extra): health, metadata and infer over loopback, with the tensors as JSON and as binary data
(the binary tensor data extension), and the errors it shows. Then the extension's binary bodies
from a hostile prober: every malformed one a JSON 400 (or 413), never a 500 or a traceback.
Skipped where tritonclient is not installed."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (the dev extra)")
from tritonclient.utils import InferenceServerException  # noqa: E402

from tests.runtime.serving.harness import TEXTS, serving  # noqa: E402

MODEL = "imdb-lstm"
MAX_BATCH, MAX_BODY = 16, 64 * 1024
INFER = f"/v2/models/{MODEL}/infer"
UNICODE_TEXT = "Ein großartiger Film, wunderbar gespielt — ich habe jede Minute geliebt 🎬"


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    yield from serving(
        tmp_path_factory.mktemp("tritonclient"),
        "--model",
        str(bundle_dir),
        "--workers",
        "1",
        "--max-batch",
        str(MAX_BATCH),
        "--max-body-bytes",
        str(MAX_BODY),
    )


@pytest.fixture(scope="module")
def client(server):
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def expected(bundle_dir):
    """{text: (probabilities as float32, label)} from the Python API."""
    from runtime import SentimentClassifier

    texts = [*TEXTS[:MAX_BATCH], UNICODE_TEXT]
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        probabilities = classifier.probabilities(texts)
        labels = [prediction.label for prediction in classifier.classify_batch(texts)]
    return {text: (row, label) for text, row, label in zip(texts, probabilities, labels)}


def text_input(texts: list[str], binary: bool, shape: list[int] | None = None):
    tensor = httpclient.InferInput("text", shape or [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object).reshape(shape or [len(texts)]), binary_data=binary)
    return tensor


def check(result, texts: list[str], expected, outputs=("probabilities", "label")) -> None:
    """The client's numpy arrays equal the Python API's answers, bit for bit."""
    if "probabilities" in outputs:
        got = result.as_numpy("probabilities")
        assert got.dtype == np.float32 and got.shape == (len(texts), 2)
        np.testing.assert_array_equal(got, np.array([expected[text][0] for text in texts], np.float32))
    else:
        assert result.as_numpy("probabilities") is None
    if "label" in outputs:
        labels = result.as_numpy("label")
        assert labels.shape == (len(texts),)
        # the client gives BYTES as bytes when they came as binary data, as str when as JSON
        labels = [label.decode() if isinstance(label, bytes) else label for label in labels]
        assert labels == [expected[text][1] for text in texts]
    else:
        assert result.as_numpy("label") is None


# --- tritonclient, as its documentation uses it ---------------------------------------------------


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, "1")
    metadata = client.get_server_metadata()
    assert metadata["name"] == "imdb-sentiment" and "binary_tensor_data" in metadata["extensions"]
    model = client.get_model_metadata(MODEL)
    assert model["name"] == MODEL and model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [output["name"] for output in model["outputs"]] == ["probabilities", "label", "known_words", "words"]
    with pytest.raises(InferenceServerException) as error:
        client.get_model_metadata("another-model")
    assert error.value.status() == "404" and "no model named 'another-model'" in error.value.message()


@pytest.mark.parametrize("binary_input", [False, True], ids=["json-input", "binary-input"])
@pytest.mark.parametrize("binary_output", [False, True], ids=["json-output", "binary-output"])
def test_infer_equals_the_python_api(client, expected, binary_input, binary_output):
    texts = [*TEXTS[:7], UNICODE_TEXT]
    outputs = [
        httpclient.InferRequestedOutput("probabilities", binary_data=binary_output),
        httpclient.InferRequestedOutput("label", binary_data=binary_output),
    ]
    result = client.infer(MODEL, [text_input(texts, binary_input)], outputs=outputs, request_id="7")
    check(result, texts, expected)
    response = result.get_response()
    assert response["model_name"] == MODEL and response["model_version"] == "1" and response["id"] == "7"
    for output in response["outputs"]:
        assert ("data" in output) is not binary_output
        assert ("binary_data_size" in output.get("parameters", {})) is binary_output


def test_infer_with_the_clients_defaults(client, expected):
    """No outputs named: the client asks for every output as binary data (`binary_data_output`)."""
    texts = TEXTS[:MAX_BATCH]
    check(client.infer(MODEL, [text_input(texts, binary=True)]), texts, expected)
    check(client.infer(MODEL, [text_input(texts, binary=False)], model_version="1"), texts, expected)


def test_infer_one_output_and_a_column_shape(client, expected):
    texts = TEXTS[:3]
    for binary in (False, True):
        result = client.infer(
            MODEL,
            [text_input(texts, binary, shape=[3, 1])],
            outputs=[httpclient.InferRequestedOutput("label", binary_data=binary)],
        )
        check(result, texts, expected, outputs=("label",))


def test_the_client_shows_the_servers_errors(client):
    for binary in (False, True):
        with pytest.raises(InferenceServerException) as error:
            client.infer(MODEL, [text_input(["A good film.", "!!!"], binary)])
        assert error.value.status() == "400"
        assert 'input "text" element 1: the text has no words to classify' in error.value.message()
    with pytest.raises(InferenceServerException) as error:
        client.infer(MODEL, [text_input(["a film"] * (MAX_BATCH + 1), binary=True)])
    assert error.value.status() == "413" and f"at most {MAX_BATCH}" in error.value.message()
    tensor = httpclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"caf\xe9 au lait"], dtype=object), binary_data=True)
    with pytest.raises(InferenceServerException) as error:
        client.infer(MODEL, [tensor])
    assert error.value.status() == "400" and "element 0 is not UTF-8" in error.value.message()


# --- the binary tensor data extension from a hostile prober ----------------------------------------


def binary_request(header: dict, data: bytes, header_length: int | None = None, extra: dict | None = None):
    head = json.dumps(header).encode()
    length = len(head) if header_length is None else header_length
    return head + data, {"Inference-Header-Content-Length": str(length), **(extra or {})}


def elements(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(text)) + text for text in texts)


def binary_input(shape, size) -> dict:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "parameters": {"binary_data_size": size}}]}


GOOD = elements(b"A wonderful film.", b"Dull and far too long.")


@pytest.mark.parametrize(
    "body, headers, status, message",
    [
        (*binary_request(binary_input([2], len(GOOD)), GOOD, header_length=10**6), 400, "longer than the body"),
        (*binary_request(binary_input([2], len(GOOD)), GOOD, header_length=10**30), 400, "number of bytes"),
        (*binary_request(binary_input([1], MAX_BODY), elements(b"a" * (MAX_BODY - 4))), 413, "at most"),
        (*binary_request(binary_input([2], len(GOOD)), GOOD, header_length=len(GOOD) * 9), 400, "longer than the body"),
        (b"{}", {"Inference-Header-Content-Length": "-1"}, 400, "Inference-Header-Content-Length"),
        (b"{}", {"Inference-Header-Content-Length": "0x10"}, 400, "Inference-Header-Content-Length"),
        (*binary_request(binary_input([2], len(GOOD) + 1), GOOD), 400, "binary_data_size"),
        (*binary_request(binary_input([2], len(GOOD) - 1), GOOD), 400, "binary_data_size"),
        (*binary_request(binary_input([2], "12"), GOOD), 400, "binary_data_size"),
        (*binary_request(binary_input([2], True), GOOD), 400, "binary_data_size"),
        (*binary_request(binary_input([3], len(GOOD)), GOOD), 400, "2 elements"),
        (*binary_request(binary_input([1], len(GOOD)), GOOD), 400, "past its 1 element"),
        (*binary_request(binary_input([1], 7), elements(b"abcdef")[:7]), 400, "runs past"),
        (*binary_request(binary_input([1], 3), b"\x01\x00\x00"), 400, "runs past"),
        (*binary_request(binary_input([2], 0), b""), 400, "0 elements"),
        (*binary_request({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2]}]}, GOOD), 400, "left over"),
        (
            *binary_request(
                {
                    "inputs": [
                        {
                            "name": "text",
                            "datatype": "BYTES",
                            "shape": [1],
                            "data": ["x"],
                            "parameters": {"binary_data_size": 5},
                        }
                    ]
                },
                elements(b"x"),
            ),
            400,
            '"data"',
        ),
        (
            *binary_request({**binary_input([2], len(GOOD)), "parameters": {"binary_data_output": "yes"}}, GOOD),
            400,
            "binary_data_output",
        ),
        (
            *binary_request(
                {**binary_input([2], len(GOOD)), "outputs": [{"name": "label", "parameters": {"binary_data": 1}}]}, GOOD
            ),
            400,
            "binary_data",
        ),
        (*binary_request(binary_input([1], 9), elements(b"\xff\xfe\xfd\xfc\xfb")), 400, "element 0 is not UTF-8"),
        (*binary_request(binary_input([2], len(GOOD)), GOOD, header_length=5), 400, "not JSON"),
        (*binary_request(binary_input([2], len(GOOD)), GOOD, extra={"Content-Type": "text/plain"}), 415, "text/plain"),
    ],
)
def test_malformed_binary_requests_are_json_errors(server, body, headers, status, message):
    got, got_headers, answer = server.request("POST", INFER, body, headers)
    assert (got, got_headers["content-type"]) == (status, "application/json"), answer
    assert message in answer["error"]


def test_a_binary_request_as_the_extension_documents_it(server, expected):
    """Content-Type: application/octet-stream, and the outputs asked for as binary data, one by one."""
    texts = [TEXTS[0].encode(), UNICODE_TEXT.encode()]
    data = elements(*texts)
    header = {
        **binary_input([2], len(data)),
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "probabilities"}],
    }
    body, headers = binary_request(header, data, extra={"Content-Type": "application/octet-stream"})
    status, got_headers, answer = server.request("POST", INFER, body, headers)
    assert status == 200 and got_headers["content-type"] == "application/octet-stream"
    length = int(got_headers["inference-header-content-length"])
    response, binary = json.loads(answer[:length]), answer[length:]
    label, probabilities = response["outputs"]
    assert label == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [2],
        "parameters": {"binary_data_size": len(binary)},
    }
    want = [expected[text.decode()] for text in texts]
    assert binary == elements(*(w[1].encode() for w in want))
    assert probabilities["data"] == [float(value) for w in want for value in w[0]]


def test_binary_data_is_for_infer_only(server):
    body, headers = binary_request({"texts": ["a good film"]}, b"", extra={"Content-Type": "application/json"})
    status, _, answer = server.request("POST", "/v1/predict", body, headers)
    assert status == 415 and "binary tensor data" in answer["error"]
