"""The OpenAPI document (runtime/serving/openapi.json, served at /openapi.json with the server's
version and limits filled in): well-formed, and describing exactly the routes the server has."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed (pip install '.[serve]')")

from runtime.serving import protocol  # noqa: E402
from runtime.serving.app import SentimentService  # noqa: E402
from runtime.serving.dataplane import DataPlane  # noqa: E402
from runtime.serving.metrics import Metrics  # noqa: E402
from runtime.serving.pool import ClassifierPool  # noqa: E402
from runtime.serving.protocol import Limits  # noqa: E402

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def references(value) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if "$ref" in value else []
        return own + [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return []


def test_the_document_is_valid_openapi_with_the_values_filled_in():
    document = protocol.openapi_document("1.2.3", Limits(max_body_bytes=2048, max_batch=5))
    assert document["openapi"] == "3.1.0" and document["info"]["title"] == "imdb-sentiment"
    assert document["info"]["version"] == "1.2.3"
    assert "At most 5 texts and 2048 bytes a request" in document["info"]["description"]
    assert document["components"]["schemas"]["PredictRequest"]["properties"]["texts"]["maxItems"] == 5
    assert "$" not in document["info"]["description"] and "null" not in json.dumps(document["info"])
    for path, operations in document["paths"].items():
        assert path.startswith("/") and operations and set(operations) <= METHODS, path
        for operation in operations.values():
            assert operation["summary"] and operation["responses"], path
            assert all(
                status.isdigit() and "description" in answer for status, answer in operation["responses"].items()
            )
            parameters = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert parameters == {part.strip("{}") for part in path.split("/") if part.startswith("{")}, path
    schemas = document["components"]["schemas"]
    for reference in references(document):
        assert reference.startswith("#/components/schemas/") and reference.rsplit("/", 1)[1] in schemas, reference


def test_the_document_names_the_protocol_constants():
    schemas = protocol.openapi_document("1", Limits())["components"]["schemas"]
    request = schemas["InferRequest"]["properties"]
    assert request["inputs"]["items"]["properties"]["name"] == {"const": protocol.INPUT_TEXT}
    assert request["outputs"]["items"]["properties"]["name"] == {"enum": list(protocol.OUTPUTS)}
    version = protocol.openapi_document("1", Limits())["paths"]["/v2/models/{name}/versions/{version}"]["get"]
    assert [(p["name"], p["in"], p["required"], p["schema"]["type"]) for p in version["parameters"]] == [
        ("name", "path", True, "string"),
        ("version", "path", True, "string"),
    ]


def test_the_document_mentions_every_route_and_no_other():
    routes = {
        route.path.rstrip("/") or "/"
        for route in SentimentService(DataPlane(ClassifierPool(1, None), Metrics())).routes()
    }
    assert routes == set(protocol.openapi_document("1", Limits())["paths"])
