"""The explain page at `/`, driven in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) through selenium, against the server in a subprocess. Skipped, saying what is
missing, where there is no browser, driver or selenium."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from scripts.explain_screenshot import chromium, chromium_missing, explain_in_page

if chromium_missing():
    pytest.skip(f"the explain page needs a browser to drive: {chromium_missing()}", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from runtime import SentimentClassifier  # noqa: E402
from tests.runtime.serving.harness import ServerProcess  # noqa: E402

# A review with markup, an entity, a curly apostrophe and a word outside the vocabulary.
REVIEW = (
    "The first hour is dull and the dialogue is clumsy.<br /><br />But the last act is wonderful: "
    "the cast is superb, the music moving, and I didn&#39;t want it to end. Zxqvwk’s best film."
)

# WCAG contrast of each word's text on its shading (over the page's white), computed in the page.
CONTRASTS = """
const rgb = text => text.match(/[\\d.]+/g).map(Number);
const luminance = ([r, g, b]) => [r, g, b].map(v => v / 255)
  .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
  .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
return Array.from(document.querySelectorAll('#words .word')).map(node => {
  const style = getComputedStyle(node);
  const [r, g, b, a = 1] = rgb(style.backgroundColor);
  const back = [r, g, b].map(v => v * a + 255 * (1 - a));
  const [light, dark] = [luminance(back), luminance(rgb(style.color))].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
});
"""


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("page"), "--model", str(bundle_dir), "--workers", "1")
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def browser():
    with chromium(network_log=True) as driver:
        yield driver


@pytest.fixture(scope="module")
def expected(bundle_dir):
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:  # the server's backend: auto
        return classifier.explain(REVIEW).to_dict()


def page_url(server) -> str:
    return f"http://127.0.0.1:{server.port}/"


def test_a_review_is_explained_with_its_label_chart_and_every_word_shaded(server, browser, expected, tmp_path):
    explain_in_page(browser, page_url(server), REVIEW)
    assert browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "label").text == expected["label"]
    rows = [row.text.split() for row in browser.find_elements(By.CSS_SELECTOR, "#probabilities tbody tr")]
    assert rows == [[label, f"{value:.3f}"] for label, value in expected["probabilities"].items()]

    words = browser.find_elements(By.CSS_SELECTOR, "#words .word")
    assert [word.text for word in words] == [REVIEW[w["start"] : w["end"]] for w in expected["words"]]
    backgrounds = browser.execute_script(
        "return Array.from(document.querySelectorAll('#words .word')).map(n => getComputedStyle(n).backgroundColor)"
    )
    assert all(colour not in ("transparent", "rgba(0, 0, 0, 0)") for colour in backgrounds)
    for word, colour in zip(expected["words"], backgrounds):  # blue toward positive, orange toward negative
        leaning = (word["effect"] or 0) * (1 if expected["label"] == "positive" else -1)
        assert colour.startswith("rgba(33, 102, 172" if leaning >= 0 else "rgba(230, 97, 1"), (word, colour)
    assert "oov" in words[[w["word"] for w in expected["words"]].index("zxqvwk's")].get_attribute("class")
    assert min(browser.execute_script(CONTRASTS)) >= 4.5

    chart = browser.find_element(By.ID, "chart")
    lines = chart.find_elements(By.TAG_NAME, "polyline")
    assert len(lines) == len(expected["probabilities"])
    assert all(len(line.get_attribute("points").split()) == len(expected["words"]) + 1 for line in lines)
    assert f"after each of {len(expected['words'])} words" in browser.find_element(By.ID, "chart-desc").get_attribute(
        "textContent"
    )
    screenshot = tmp_path / "explain.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000


def test_the_page_asks_nothing_of_any_host_but_its_own(server, browser):
    status, headers, html = server.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = html.decode()
    # Its own script and style, as files (the policy allows no inline script or style), and nothing else.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="explain.js" defer>']
    assert re.findall(r"<link[^>]+stylesheet[^>]*>", page) == ['<link rel="stylesheet" href="explain.css">']
    assert " style=" not in page and "<style" not in page
    for path, kind in (("/explain.js", "text/javascript"), ("/explain.css", "text/css")):
        status, file_headers, content = server.request("GET", path)
        assert status == 200 and file_headers["content-type"].startswith(kind)
        page += content.decode()
    # No absolute or protocol-relative URL, no import or font from elsewhere.
    assert not re.search(r"(?i)\b(?:https?|wss?|ftp):|//[\w-]+\.[\w.-]+|@import|url\(", page)
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "unsafe-inline" not in policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy

    browser.get_log("performance")  # what earlier tests asked for
    explain_in_page(browser, page_url(server), "A fine film.")
    assert browser.find_element(By.ID, "label").text  # the script ran under the policy
    assert browser.execute_script("return getComputedStyle(document.getElementById('verdict')).fontSize") == "20px"
    requested = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"
    ]
    assert {page_url(server) + name for name in ("v1/explain", "explain.js", "explain.css")} <= set(requested)
    network = [url for url in requested if urlsplit(url).scheme not in ("data", "chrome", "about", "blob")]
    assert {urlsplit(url).netloc for url in network} == {f"127.0.0.1:{server.port}"}, network
    refused = [
        entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]
    ]
    assert not refused


def test_a_long_review_shows_the_words_read_and_says_how_many_were_not(server, browser, bundle_dir):
    """200,000 words: the page once spread one argument a node into replaceChildren, and the stack
    overflowed. The server now answers the words read only; the page says how many came before."""
    words = ["dull" if index % 5 else "fun" for index in range(200_000)]
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        length = classifier.config.sequence_length
    explain_in_page(browser, page_url(server), " ".join(words), timeout=120)
    assert browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "status").text.startswith("Done")
    shown = browser.find_elements(By.CSS_SELECTOR, "#words .word")
    assert [word.text for word in shown] == words[-length:]
    assert (
        f"The first {len(words) - length:,} words, in grey, were not read"
        in browser.find_element(By.ID, "words-legend").text
    )
    cut = browser.find_element(By.CSS_SELECTOR, "#words .cut")
    assert (
        browser.execute_script("return arguments[0].textContent.split(' ').filter(Boolean).length", cut)
        == len(words) - length
    )
    points = browser.find_element(By.CSS_SELECTOR, "#chart polyline").get_attribute("points").split()
    assert len(points) == length  # no opinion before the first word read: the start token was cut off


def submit(browser, text: str) -> None:
    """Ask for another review in the page already open, without loading it again."""
    review = browser.find_element(By.ID, "review")
    browser.execute_script("arguments[0].value = arguments[1];", review, text)
    browser.find_element(By.ID, "explain").click()
    WebDriverWait(browser, 60).until(lambda page: not page.find_element(By.ID, "explain").get_attribute("disabled"))


def test_an_error_clears_the_result_of_the_review_before(server, browser):
    explain_in_page(browser, page_url(server), REVIEW)
    assert browser.find_element(By.ID, "result").is_displayed()
    submit(browser, "... !!!")
    assert "no words" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#words .word, #probabilities tbody tr, #chart polyline") == []
    assert browser.find_element(By.ID, "label").get_attribute("textContent") == ""
    submit(browser, "A fine film.")  # and the next answer clears the error
    assert browser.find_element(By.ID, "error").text == "" and browser.find_element(By.ID, "result").is_displayed()


def test_the_server_s_warnings_are_shown_and_go_with_their_answer(server, browser):
    browser.get(page_url(server))
    warning = browser.find_element(By.ID, "warnings")
    assert not warning.is_displayed() and warning.get_attribute("role") == "status"
    # The answer as a server with an unverified model gives it (the page's own fetch, with "warnings" added).
    browser.execute_script("""
      const fetched = window.serverFetch = window.fetch;
      window.fetch = async (...request) => {
        const answer = await (await fetched(...request)).json();
        return new Response(JSON.stringify({...answer, warnings: ["the model is unverified"]}), {status: 200});
      };""")
    submit(browser, "A fine film.")
    assert warning.is_displayed() and warning.text == "Warning: the model is unverified"
    browser.execute_script("window.fetch = window.serverFetch")
    submit(browser, "A fine film.")  # an answer without warnings: the notice goes
    assert not warning.is_displayed() and warning.text == ""


def test_colours_read_toward_positive_or_negative_whatever_the_answer(server, browser, bundle_dir):
    """Issue #34 item 4: the page shaded toward the final label, the terminal otherwise; now both read
    blue toward positive, orange toward negative, so "dull" is orange on a negative review too."""
    review = "Dull, boring and far too long."
    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        explanation = classifier.explain(review)
    assert explanation.label == "negative"
    explain_in_page(browser, page_url(server), review)
    words = browser.find_elements(By.CSS_SELECTOR, "#words .word")
    backgrounds = browser.execute_script(
        "return Array.from(document.querySelectorAll('#words .word')).map(n => getComputedStyle(n).backgroundColor)"
    )
    for word, colour in zip(explanation.words, backgrounds):
        leaning = explanation.leaning(word) or 0
        assert colour.startswith("rgba(33, 102, 172" if leaning >= 0 else "rgba(230, 97, 1"), (word.word, colour)
    assert backgrounds[0].startswith("rgba(230, 97, 1") and words[0].text == "Dull"
    assert browser.find_element(By.ID, "words-legend").text.startswith("Blue: toward positive; orange: toward negative")
    assert "toward negative" in browser.find_element(By.ID, "strongest").text


def test_the_page_says_how_many_words_the_model_knows_and_warns_under_half(server, browser):
    """Issue #34 item 14: a text the model cannot read (no word known) was answered as any other."""
    explain_in_page(browser, page_url(server), "这部电影很好")
    assert browser.find_element(By.ID, "coverage").text == "The model knows 0 of the 1 word it read."
    warning = browser.find_element(By.ID, "warnings")
    assert warning.is_displayed() and "the model knows 0 of 1 word read" in warning.text
    submit(browser, "A wonderful film.")
    assert browser.find_element(By.ID, "coverage").text == "The model knows 3 of the 3 words it read."
    assert not warning.is_displayed()


def test_keyboard_only_with_labels_and_a_spoken_error(server, browser):
    browser.get(page_url(server))
    assert browser.execute_script("return document.getElementById('review').labels.length") == 1
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "review"
    browser.switch_to.active_element.send_keys("Dull, boring and far too long.", Keys.CONTROL, Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda page: page.find_element(By.ID, "status").text.startswith("Done"))
    assert (
        browser.switch_to.active_element.get_attribute("id") == "result-heading"
    )  # a screen reader reads on from the result
    assert browser.find_element(By.ID, "label").text == "negative"
    assert browser.find_element(By.ID, "chart").get_attribute("role") == "img"

    browser.find_element(By.ID, "review").clear()
    browser.find_element(By.ID, "review").send_keys("... !!!")
    browser.find_element(By.ID, "explain").click()
    WebDriverWait(browser, 60).until(lambda page: page.find_element(By.ID, "error").text)
    error = browser.find_element(By.ID, "error")
    assert error.get_attribute("role") == "alert" and "no words" in error.text
