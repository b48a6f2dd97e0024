"""The JSON the server reads and writes, apart from HTTP: the simple protocol (`POST /v1/predict`,
`POST /v1/explain`), the Open Inference Protocol (KServe v2: the model's metadata, `infer` requests and responses,
with its binary tensor data extension) and the OpenAPI document that describes every endpoint
(openapi.json beside this module, a data file).

Everything here is a plain function of bytes and dicts. A body that cannot be answered raises
`RequestError` with the HTTP status that fits; `runtime.serving.app` turns it into a JSON error.
"""

from __future__ import annotations

import json
import math
import re
import string
import struct
from dataclasses import dataclass
from pathlib import Path

from runtime import backends

# The OpenAPI document of every endpoint, but for the values openapi_document fills in.
OPENAPI = Path(__file__).with_name("openapi.json")
# The Open Inference Protocol names of the model's one input and two outputs.
INPUT_TEXT = "text"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LABEL = "label"
# How many of the words it read the model knows, and how many it read (runtime.text.Coverage).
OUTPUT_KNOWN_WORDS = "known_words"
OUTPUT_WORDS = "words"
OUTPUTS = (OUTPUT_PROBABILITIES, OUTPUT_LABEL, OUTPUT_KNOWN_WORDS, OUTPUT_WORDS)
# The request parameter (/v1 and OIP) and server option (--min-known) that refuse a text whose words
# the model mostly does not know.
MIN_KNOWN = "min_known"
# The version of a server started on one bundle folder (--model): `/v2/models/{name}/versions/1`
# names it. With --models DIR the version is N of DIR/versions/N, the one serving.
MODEL_VERSION = "1"
# The OIP extensions this server implements, as Triton names them in its server metadata.
EXTENSIONS = ["binary_tensor_data"]
# The binary tensor data extension: the header giving the length of the JSON that starts the body
# (binary tensor data follows it), and a BYTES element's length prefix (4 bytes, little-endian).
INFERENCE_HEADER = "inference-header-content-length"
ELEMENT_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class Limits:
    """What one request may be (the server's options of the same names)."""

    max_body_bytes: int = 1 << 20
    max_batch: int = 64
    request_timeout: float = 10.0  # seconds for a whole request to arrive
    # The least share of its words the model must know for a text to be answered (--min-known); a
    # request may ask for more with "min_known", never for less.
    min_known: float = 0.0


class RequestError(Exception):
    """A request the server refuses, with the status and message its JSON error carries."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def read_json(body: bytes) -> object:
    """The JSON value of a request body: strict UTF-8, and a 400 for anything json cannot read,
    including nesting deeper than Python's recursion limit and integers of thousands of digits."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(
            400, f"the body is not UTF-8 (byte 0x{body[error.start]:02x} at offset {error.start})"
        ) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise RequestError(400, "the body is not JSON that can be read: nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError, and int() past its digit limit
        raise RequestError(400, f"the body is not JSON that can be read: {str(error)[:200]}") from None
    # JSON may escape half of a surrogate pair alone ("\ud800"): not Unicode, so no answer could
    # echo it. Strict UTF-8 refuses raw surrogates, so only a body with an escape needs the check.
    if "\\u" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                400, "the body holds a string that is not Unicode (a lone surrogate escape such as \\ud800)"
            ) from None
    return value


def render(answer: dict) -> bytes:
    """An answer's JSON as UTF-8 bytes (compact, as Starlette's JSONResponse writes it). A long list
    at the top is encoded item by item, so that no single call holds the GIL for long: the server
    renders answers in its pool's threads while the event loop goes on serving."""

    def dumps(value) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    parts = []
    for key, value in answer.items():
        if isinstance(value, list) and len(value) > 64:
            value_text = "[" + ",".join(dumps(item) for item in value) + "]"
        else:
            value_text = dumps(value)
        parts.append(f"{dumps(key)}:{value_text}")
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def json_type(value: object) -> str:
    """A value's JSON type name, for error messages a client of any language understands."""
    names = {
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _check_batch_size(count: int, max_batch: int) -> None:
    if count > max_batch:
        raise RequestError(413, f"{count} texts; at most {max_batch} per request")


# --- the simple protocol: POST /v1/predict ------------------------------------------------------


def min_known(parameters: object, limits: Limits, status: int) -> float:
    """The share of known words a request's texts need: its "min_known" (a number from 0 to 1, else
    `status`), but never less than the server's."""
    value = parameters.get(MIN_KNOWN) if isinstance(parameters, dict) else None
    if value is None:
        return limits.min_known
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RequestError(status, f'"{MIN_KNOWN}" is a share of the words from 0 to 1, not {json.dumps(value)[:40]}')
    return max(float(value), limits.min_known)


def predict_texts(payload: object, max_batch: int) -> list[str]:
    """The texts of a `{"texts": [...]}` request. Its shape is checked whole (422); whether each text
    can be classified is answered text by text."""
    texts = payload.get("texts") if isinstance(payload, dict) else None
    if not isinstance(texts, list) or not texts:
        raise RequestError(422, 'expected {"texts": ["review", ...]} with at least one text')
    _check_batch_size(len(texts), max_batch)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(422, f"texts[{index}] is {json_type(text)}, not a string")
    return texts


def with_warnings(answer: dict, warnings: tuple[str, ...]) -> dict:
    """The answer, with `"warnings"` about the model (e.g. it is unverified) when there are any."""
    return {**answer, "warnings": list(warnings)} if warnings else answer


def predict_response(outcomes: list, version: str, warnings: tuple[str, ...] = ()) -> dict:
    """Each text's prediction (`Prediction.to_dict()`), or `{"error": message}` where it has none,
    and the version of the model that answered."""
    return with_warnings(
        {
            "model_version": version,
            "predictions": [
                {"error": outcome} if isinstance(outcome, str) else outcome.to_dict() for outcome in outcomes
            ],
        },
        warnings,
    )


def explain_text(payload: object) -> str:
    """The text of a `{"text": "..."}` request to /v1/explain (one review: its answer is one per word)."""
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        found = json_type(text) if isinstance(payload, dict) and "text" in payload else "no text"
        raise RequestError(422, f'expected {{"text": "review"}}; got {found}')
    return text


# --- the Open Inference Protocol (KServe v2) ---------------------------------------------------


def server_metadata(version: str) -> dict:
    return {"name": "imdb-sentiment", "version": version, "extensions": list(EXTENSIONS)}


def model_metadata(name: str, version: str, backend: str, labels: list[str]) -> dict:
    """$metadata_model_response, plus the labels in the order of the probabilities' last axis."""
    return {
        "name": name,
        "versions": [version],
        "platform": backends.backend_named(backend).platform,
        "inputs": [{"name": INPUT_TEXT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [-1, len(labels)]},
            {"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]},
            {"name": OUTPUT_KNOWN_WORDS, "datatype": "INT32", "shape": [-1]},
            {"name": OUTPUT_WORDS, "datatype": "INT32", "shape": [-1]},
        ],
        "labels": list(labels),
    }


@dataclass(frozen=True)
class InferRequest:
    texts: list[str]
    outputs: tuple[str, ...]  # the outputs asked for, in the order asked; all of them by default
    id: str | None = None
    binary_outputs: frozenset[str] = frozenset()  # the outputs to answer as binary tensor data
    min_known: float = 0.0  # refuse a text whose words the model knows fewer of (parameter "min_known")


def _tensor_texts(data: object, shape: list[int]) -> list:
    """The elements of a [n] or [n, 1] tensor's data, row-major: the protocol allows a flat array or
    one nested as the shape says ([[t], [t]] for [n, 1]); nothing else, and no recursion over
    the client's data."""
    if not isinstance(data, list):
        raise RequestError(400, f'input "{INPUT_TEXT}" data is {json_type(data)}; expected an array of strings')
    if len(shape) == 2 and data and all(isinstance(row, list) for row in data):  # nested as [n, 1]
        if len(data) != shape[0] or any(len(row) != 1 for row in data):
            raise RequestError(400, f'input "{INPUT_TEXT}" has shape {shape} but its nested data does not')
        data = [row[0] for row in data]
    if len(data) != math.prod(shape):
        raise RequestError(400, f'input "{INPUT_TEXT}" has shape {shape} but {len(data)} elements')
    return data


def _binary_texts(data: bytes, shape: list[int]) -> list[str]:
    """The elements of a BYTES tensor sent as binary data: each a 4-byte little-endian length and
    that many bytes of UTF-8. The shape (at most max_batch elements) bounds the loop."""
    count, texts, offset = math.prod(shape), [], 0
    while offset < len(data):
        index = len(texts)
        if index == count:
            raise RequestError(
                400,
                f'input "{INPUT_TEXT}" has binary data past its {count} element{"s" * (count != 1)} '
                f"(shape {shape}): {len(data) - offset} bytes more",
            )
        if offset + ELEMENT_LENGTH.size > len(data):
            raise RequestError(
                400, f'input "{INPUT_TEXT}" element {index}: its 4-byte length runs past the binary data'
            )
        (length,) = ELEMENT_LENGTH.unpack_from(data, offset)
        start, offset = offset + ELEMENT_LENGTH.size, offset + ELEMENT_LENGTH.size + length
        if offset > len(data):
            raise RequestError(
                400,
                f'input "{INPUT_TEXT}" element {index} of {length} bytes runs past the binary data ({len(data)} bytes)',
            )
        try:
            texts.append(data[start:offset].decode("utf-8"))
        except UnicodeDecodeError as error:
            raise RequestError(
                400,
                f'input "{INPUT_TEXT}" element {index} is not UTF-8 '
                f"(byte 0x{data[start + error.start]:02x} at offset {error.start})",
            ) from None
    if len(texts) != count:
        raise RequestError(400, f'input "{INPUT_TEXT}" has shape {shape} but {len(texts)} elements')
    return texts


def _parameters(holder: dict, where: str) -> dict:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(400, f'"parameters" of {where} is {json_type(parameters)}, not an object')
    return parameters


def _flag(parameters: dict, name: str, where: str) -> bool | None:
    value = parameters.get(name)
    if value is not None and not isinstance(value, bool):
        raise RequestError(400, f'parameter "{name}" of {where} is {json_type(value)}, not a boolean')
    return value


def inference_header_length(value: str, body_bytes: int) -> int:
    """The Inference-Header-Content-Length of a body of `body_bytes` bytes: the length of the JSON
    before its binary tensor data."""
    if not re.fullmatch(r"[0-9]{1,20}", value.strip()):
        raise RequestError(400, f"Inference-Header-Content-Length must be a number of bytes, not {value[:40]!r}")
    length = int(value)
    if length > body_bytes:
        raise RequestError(
            400, f"Inference-Header-Content-Length {length} is longer than the body ({body_bytes} bytes)"
        )
    return length


def infer_request_from_body(body: bytes, header_length: str | None, limits: Limits) -> InferRequest:
    """The $inference_request of an infer body: JSON, or (with an Inference-Header-Content-Length,
    the binary tensor data extension) JSON of that length followed by the input's binary data."""
    if header_length is None:
        return infer_request(read_json(body), limits)
    length = inference_header_length(header_length, len(body))
    return infer_request(read_json(body[:length]), limits, binary=body[length:])


def infer_request(payload: object, limits: Limits, binary: bytes | None = None) -> InferRequest:
    """An $inference_request with one BYTES input named "text" of shape [n] or [n, 1], its data the
    texts as JSON strings, or as binary data (`binary`: what follows the JSON in the body, when the
    request has an Inference-Header-Content-Length). Outputs are answered as binary data when asked
    (`binary_data` on an output, `binary_data_output` on the request)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise RequestError(400, 'expected an inference request: {"inputs": [{"name": "text", ...}]}')
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, f'"id" is {json_type(request_id)}, not a string')
    inputs = payload["inputs"]
    names = [tensor.get("name") if isinstance(tensor, dict) else None for tensor in inputs]
    if names != [INPUT_TEXT]:
        raise RequestError(400, f'the model takes one input, "{INPUT_TEXT}"; got {json.dumps(names)}')
    tensor = inputs[0]
    if tensor.get("datatype") != "BYTES":
        raise RequestError(400, f'input "{INPUT_TEXT}" has datatype BYTES, not {json.dumps(tensor.get("datatype"))}')
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(type(size) is int and size >= 0 for size in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise RequestError(400, f'input "{INPUT_TEXT}" has shape [n] or [n, 1], not {json.dumps(shape)}')
    _check_batch_size(math.prod(shape), limits.max_batch)
    texts = _input_texts(tensor, shape, binary or b"")
    if not texts:
        raise RequestError(400, f'input "{INPUT_TEXT}" holds no text')
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f'input "{INPUT_TEXT}" element {index} is {json_type(text)}, not a string')
    parameters = _parameters(payload, "the request")
    all_binary = _flag(parameters, "binary_data_output", "the request") or False
    least = min_known(parameters, limits, 400)
    asked = payload.get("outputs")
    if asked is None:
        return InferRequest(texts, OUTPUTS, request_id, frozenset(OUTPUTS) if all_binary else frozenset(), least)
    names = (
        [output.get("name") if isinstance(output, dict) else None for output in asked]
        if isinstance(asked, list)
        else None
    )
    if not names or any(name not in OUTPUTS for name in names):
        raise RequestError(400, f"the model's outputs are {json.dumps(list(OUTPUTS))}; asked for {json.dumps(names)}")
    binary_outputs = set()
    for output in asked:
        where = f'output "{output["name"]}"'
        flag = _flag(_parameters(output, where), "binary_data", where)
        if flag or (flag is None and all_binary):
            binary_outputs.add(output["name"])
    return InferRequest(texts, tuple(names), request_id, frozenset(binary_outputs), least)


def _input_texts(tensor: dict, shape: list[int], binary: bytes) -> list:
    """The input's elements: its JSON "data", or the binary data its "binary_data_size" says it has."""
    size = _parameters(tensor, f'input "{INPUT_TEXT}"').get("binary_data_size")
    if size is None:
        if binary:
            raise RequestError(
                400, f'{len(binary)} bytes of binary data left over: input "{INPUT_TEXT}" has no "binary_data_size"'
            )
        return _tensor_texts(tensor.get("data"), shape)
    if type(size) is not int or size < 0:
        raise RequestError(
            400, f'"binary_data_size" of input "{INPUT_TEXT}" is {json.dumps(size)}, not a number of bytes'
        )
    if "data" in tensor:
        raise RequestError(400, f'input "{INPUT_TEXT}" has both "data" and binary data ("binary_data_size")')
    if size != len(binary):
        raise RequestError(
            400,
            f'input "{INPUT_TEXT}" has "binary_data_size" {size} but {len(binary)} bytes of binary data follow '
            "the JSON (Inference-Header-Content-Length)",
        )
    return _binary_texts(binary, shape)


def infer_response(name: str, version: str, request: InferRequest, labels: list[str], predictions: list) -> dict:
    """$inference_response: FP32 probabilities of shape [n, labels] (row-major, flat), the BYTES
    label of each text and its INT32 counts of known words and words read, for the outputs the
    request asked for, each with its JSON data; the texts' warnings in its parameters."""
    tensors = {
        OUTPUT_PROBABILITIES: {
            "name": OUTPUT_PROBABILITIES,
            "datatype": "FP32",
            "shape": [len(predictions), len(labels)],
            "data": [p.probabilities[label] for p in predictions for label in labels],
        },
        OUTPUT_LABEL: {
            "name": OUTPUT_LABEL,
            "datatype": "BYTES",
            "shape": [len(predictions)],
            "data": [p.label for p in predictions],
        },
        OUTPUT_KNOWN_WORDS: {
            "name": OUTPUT_KNOWN_WORDS,
            "datatype": "INT32",
            "shape": [len(predictions)],
            "data": [p.coverage.known_words for p in predictions],
        },
        OUTPUT_WORDS: {
            "name": OUTPUT_WORDS,
            "datatype": "INT32",
            "shape": [len(predictions)],
            "data": [p.coverage.words for p in predictions],
        },
    }
    response = {"model_name": name, "model_version": version}
    if request.id is not None:
        response["id"] = request.id
    warnings = [f"element {index}: {p.warning}" for index, p in enumerate(predictions) if p.warning]
    if warnings:  # OIP parameters are scalars: one string
        more = f"; and {len(warnings) - 3} more" if len(warnings) > 3 else ""
        response["parameters"] = {"warning": "; ".join(warnings[:3]) + more}
    response["outputs"] = [tensors[output] for output in request.outputs]
    return response


def _binary_data(tensor: dict) -> bytes:
    """A tensor's data as the binary tensor data extension sends it: little-endian FP32 or INT32, or
    each BYTES element as its 4-byte length and its UTF-8."""
    data = tensor["data"]
    if tensor["datatype"] == "FP32":
        return struct.pack(f"<{len(data)}f", *data)
    if tensor["datatype"] == "INT32":
        return struct.pack(f"<{len(data)}i", *data)
    return b"".join(ELEMENT_LENGTH.pack(len(item)) + item for item in (text.encode("utf-8") for text in data))


def infer_answer(
    name: str, version: str, request: InferRequest, labels: list[str], predictions: list
) -> tuple[bytes, int | None]:
    """The rendered $inference_response, and, when outputs are answered as binary data (which follows
    the JSON, in the order of the outputs), the length of its JSON: the answer's
    Inference-Header-Content-Length. None when it is all JSON."""
    response = infer_response(name, version, request, labels, predictions)
    binary = []
    for tensor in response["outputs"]:
        if tensor["name"] in request.binary_outputs:
            binary.append(_binary_data(tensor))
            del tensor["data"]
            tensor["parameters"] = {"binary_data_size": len(binary[-1])}
    head = render(response)
    return (head + b"".join(binary), len(head)) if binary else (head, None)


# --- OpenAPI -----------------------------------------------------------------------------------


def openapi_document(version: str, limits: Limits) -> dict:
    """The OpenAPI 3.1 description of every endpoint (served at /openapi.json): openapi.json, shipped
    beside this module, with the server's version and limits filled in."""
    document = json.loads(OPENAPI.read_text(encoding="utf-8"))
    info = document["info"]
    info["version"] = version
    info["description"] = string.Template(info["description"]).substitute(
        max_batch=limits.max_batch, max_body_bytes=limits.max_body_bytes
    )
    document["components"]["schemas"]["PredictRequest"]["properties"]["texts"]["maxItems"] = limits.max_batch
    return document
