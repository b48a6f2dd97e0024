"""runtime/serving/middleware.py's decisions on their own: which Host names a server answers
(DNS rebinding), and which request bodies may be read as JSON (a page of another site sending a
form). The real server's answers to the same requests: test_hostile.py."""

import socket

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed (pip install '.[serve]')")

from starlette.datastructures import Headers  # noqa: E402

from runtime.serving.middleware import LOOPBACK_NAMES, content_type_refusal, host_name, served_hosts  # noqa: E402


@pytest.mark.parametrize(
    "header, name", [("[::1]:8000", "::1"), ("Pi.local.", "pi.local"), ("EXAMPLE.org:80", "example.org")]
)
def test_a_host_header_is_its_name_without_port_case_or_final_dot(header, name):
    assert host_name(header) == name


def test_the_names_a_server_answers_to_follow_where_it_listens():
    assert served_hosts("127.0.0.1") == LOOPBACK_NAMES
    machine = socket.gethostname().lower()
    assert {machine, f"{machine}.local"} <= served_hosts("0.0.0.0") and LOOPBACK_NAMES <= served_hosts("::")
    assert served_hosts("192.0.2.7", ("Sentiment.Example.",)) == {"192.0.2.7", "sentiment.example"}
    assert "localhost" not in served_hosts("192.0.2.7")  # a public address: a rebound name is refused


def test_only_json_bodies_are_read_and_a_page_must_say_so():
    assert content_type_refusal(Headers({"content-type": "application/json; charset=utf-8"})) is None
    assert content_type_refusal(Headers({"content-type": "application/vnd.api+json"})) is None
    assert content_type_refusal(Headers({})) is None  # a script or tritonclient, no browser page
    assert "a page must send" in content_type_refusal(Headers({"origin": "https://elsewhere.example"}))
    assert "not text/plain" in content_type_refusal(Headers({"content-type": "text/plain"}))
    octet = Headers({"content-type": "application/octet-stream"})
    assert content_type_refusal(octet, binary=True) is None and content_type_refusal(octet) is not None
