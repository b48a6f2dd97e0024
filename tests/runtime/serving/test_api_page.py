"""Issue #34 item 15: the API page at /docs (Swagger UI from the swagger-ui-py package, served by the
server itself) renders /openapi.json under the pages' Content-Security-Policy, over loopback, in
headless Chromium as tests/runtime/test_explain_page.py drives the explain page; and tries an
endpoint from the page."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install '.[serve]')")

from runtime.serving import api_page  # noqa: E402
from runtime.serving.protocol import RequestError  # noqa: E402
from tests.runtime.serving.harness import ServerProcess  # noqa: E402


def test_without_swagger_ui_the_page_is_a_501_that_says_what_to_install(monkeypatch):
    import asyncio

    monkeypatch.setattr(api_page, "swagger_ui_folder", lambda: None)
    with pytest.raises(RequestError) as error:
        asyncio.run(api_page.ApiPage({}).page(None))
    assert error.value.status == 501 and "swagger-ui-py" in error.value.message and "[api-page]" in error.value.message


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    if api_page.swagger_ui_folder() is None:
        pytest.skip("swagger-ui-py is not installed (pip install '.[api-page]')")
    process = ServerProcess(tmp_path_factory.mktemp("docs"), "--model", str(bundle_dir), "--workers", "1")
    yield process
    assert process.stop() == 0
    assert "Traceback" not in process.stderr


def test_the_page_and_its_files_come_from_this_server_under_the_pages_policy(server):
    status, headers, page = server.request("GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")
    _, explain_headers, _ = server.request("GET", "/")
    assert headers["content-security-policy"] == explain_headers["content-security-policy"]
    assert (
        "unsafe-inline" not in headers["content-security-policy"]
        and "unsafe-eval" not in headers["content-security-policy"]
    )
    assert b"<script>" not in page and b"style=" not in page and b"//" not in page.replace(b"<!doctype", b"")
    for path, kind in (
        ("/docs/api-page.js", "text/javascript"),
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
    ):
        status, file_headers, content = server.request("GET", path)
        assert status == 200 and file_headers["content-type"].startswith(kind) and content, path
        assert file_headers["content-security-policy"] == headers["content-security-policy"]


# --- in a real browser -------------------------------------------------------------------------------

from scripts.explain_screenshot import chromium, chromium_missing  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    if chromium_missing():
        pytest.skip(f"the API page needs a browser to drive: {chromium_missing()}")
    with chromium(network_log=True) as driver:
        yield driver


def requested_urls(browser) -> list[str]:
    messages = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"]
    return [url for url in urls if urlsplit(url).scheme in ("http", "https", "ws", "wss")]


def test_swagger_ui_renders_every_operation_and_asks_no_other_host(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    document = server.request("GET", "/openapi.json")[2]
    operations = sum(len(methods) for methods in document["paths"].values())
    browser.get_log("performance")
    browser.get(f"http://127.0.0.1:{server.port}/docs")
    WebDriverWait(browser, 60).until(lambda page: len(page.find_elements(By.CSS_SELECTOR, ".opblock")) == operations)
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith(document["info"]["title"])
    assert {urlsplit(url).netloc for url in requested_urls(browser)} == {f"127.0.0.1:{server.port}"}
    refused = [
        entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]
    ]
    assert not refused


def test_try_it_out_calls_this_server_from_the_page(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"http://127.0.0.1:{server.port}/docs#/default/get_v1_model")
    block = WebDriverWait(browser, 60).until(
        lambda page: page.find_element(By.CSS_SELECTOR, "#operations-default-get_v1_model")
    )
    if not block.find_elements(By.CSS_SELECTOR, ".try-out"):
        block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(browser, 30).until(lambda page: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    status = WebDriverWait(browser, 30).until(
        lambda page: block.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")
    )
    assert status[0].text.strip() == "200"
    assert '"name": "imdb-lstm"' in block.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
