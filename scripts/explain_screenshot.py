"""The README's picture of the explain page: `python scripts/explain_screenshot.py` writes docs/explain.png.

It serves the shipped model (`python -m runtime.serve` on a free loopback port), opens the page
at `/` in headless Chromium (Debian's `chromium` and `chromium-driver`, driven by selenium),
pastes a real test review into it, waits for the explanation and saves the page as a PNG.
The review is the first of the IMDB test set (in the dataset's order) that the model classifies
right, of 90 to 140 tokens, in which some words push the answer each way by more than 0.1.

    python scripts/explain_screenshot.py --data ../shared/data/aclImdb_labeled.tar.gz

The browser helpers here are also what tests/runtime/test_explain_page.py drives the page with.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "explain.png"
# Headless, and quiet on the network: no first-run, sync, component or background requests, so
# that every request the browser makes is the page's own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing() -> str | None:
    """Why the page cannot be driven here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for program, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(program) is None:
            return f"no {program} on PATH (Debian: apt-get install {package})"
    return None


@contextlib.contextmanager
def chromium(width: int = 1000, height: int = 1400, network_log: bool = False):
    """A headless Chromium with a fresh profile in a temporary folder, driven by chromedriver, quit
    on leaving; with `network_log`, the DevTools performance log records every request
    (get_log("performance"))."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            options.add_argument(flag)
        if network_log:
            options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
        try:
            yield driver
        finally:
            driver.quit()


def explain_in_page(driver, url: str, text: str, timeout: float = 60) -> None:
    """Open the page, paste `text` as a review, press Explain and wait for the answer (or an error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    review = driver.find_element(By.ID, "review")
    review.clear()
    # Typing a long review key by key takes seconds; the page reads the textarea's value either way.
    driver.execute_script("arguments[0].value = arguments[1];", review, text)
    driver.find_element(By.ID, "explain").click()
    WebDriverWait(driver, timeout).until(
        lambda page: (
            page.find_element(By.ID, "error").text or page.find_element(By.ID, "status").text.startswith("Done")
        )
    )


@contextlib.contextmanager
def serving(model: Path | None = None, *options: str) -> Iterator[str]:
    """`python -m runtime.serve` on a free loopback port until the block ends; yields its URL."""
    command = [sys.executable, "-m", "runtime.serve", "--port", "0", "--quiet", *options]
    if model is not None:
        command += ["--model", str(model)]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    url, ready, lines = None, threading.Event(), []

    def read() -> None:
        nonlocal url
        for line in process.stderr:
            lines.append(line)
            found = re.match(r"listening on (http://[^;]+);", line)
            url = url or (found.group(1) if found else None)
            if line.startswith("ready:"):
                ready.set()
        ready.set()  # the process ended

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(120) or process.poll() is not None or url is None:
            raise RuntimeError("the server did not start: " + "".join(lines))
        yield url
    finally:
        process.terminate()
        process.wait(60)
        reader.join(10)


def pick_review(data_source: str | None, model: Path | None) -> str:
    """The first test review, in the dataset's order, fit for the picture (see the module docstring)."""
    from runtime import SentimentClassifier
    from training.data import load_imdb

    test = load_imdb(data_source).test
    classifier = SentimentClassifier.from_bundle(*([model] if model else []))
    labels = classifier.config.labels
    for text, label in zip(test.texts, test.labels):
        if not 90 <= len(classifier.tokenizer.token_ids(text)) <= 140:
            continue
        explanation = classifier.explain(text)
        effects = [word.effect for word in explanation.words if word.effect is not None]
        if explanation.label == labels[label] and max(effects) > 0.1 and min(effects) < -0.1:
            return text
    raise RuntimeError("no test review fits the picture")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/explain_screenshot.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA"), help="aclImdb archive or folder ($IMDB_DATA)")
    parser.add_argument("--model", type=Path, help="bundle folder (default: the shipped model)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the PNG to write")
    args = parser.parse_args(argv)
    missing = chromium_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    text = pick_review(args.data, args.model)
    with serving(args.model) as url, chromium(width=1000, height=900) as driver:
        explain_in_page(driver, url + "/", text)
        # The whole page in one picture: the window as tall as the page.
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1000, height + 120)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.output))
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
