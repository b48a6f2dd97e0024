"""The quickest cases of probes/uvicorn_public.py, on stock uvicorn with the httptools parser: what
public middleware can carry (a 408 JSON for a body that never comes) and what it cannot (uvicorn's
own 400 and 503 answers, which never reach the middleware)."""

import sys

import pytest

pytest.importorskip("uvicorn", reason="the serve extra")
pytest.importorskip("httptools", reason="the serve extra")

from probes import uvicorn_public  # noqa: E402


def test_a_receive_deadline_in_middleware_answers_a_missing_body_with_408_json():
    result = uvicorn_public.run_case("slow-body", "httptools")
    assert result["status"] == 408
    assert result["content_type"] == "application/json"
    assert result["closed"] == "closed"
    assert result["middleware_called"] == 1
    assert uvicorn_public.DEADLINE - 0.1 <= result["answered_s"] < uvicorn_public.GIVE_UP


@pytest.mark.parametrize("case", ["duplicate-content-length", "bad-request-line"])
def test_stock_uvicorn_answers_malformed_requests_itself_in_plain_text(case):
    result = uvicorn_public.run_case(case, "httptools")
    assert result["status"] == 400
    assert "json" not in (result["content_type"] or "")
    assert result["middleware_called"] == 0


def test_limit_concurrency_refuses_health_checks_in_plain_text_without_the_middleware():
    result = uvicorn_public.run_case("connections-limit_concurrency", "httptools")
    assert result["status"] == 503
    assert "json" not in (result["content_type"] or "")
    assert result["middleware_called"] == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the accepted socket through /proc")
def test_tcp_nodelay_on_the_listening_socket_reaches_the_accepted_ones():
    assert uvicorn_public.run_case("nodelay-1", "httptools")["accepted_nodelay"] is False
    assert uvicorn_public.run_case("nodelay-2", "httptools")["accepted_nodelay"] is True


def test_the_table_has_a_row_per_case_and_a_column_per_parser():
    results = {"results": [uvicorn_public.run_case("bad-request-line", parser) for parser in uvicorn_public.PARSERS]}
    table = uvicorn_public.render_table(results).splitlines()
    assert len(table) == 3
    assert table[2].startswith("| JSON errors (400) | bad-request-line |")
    assert table[2].count("400 `text/plain") == 2
