"""What the README tells a user, checked against itself and the code."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_full_test_suite_time_is_stated_once():
    """Issue #34 item 2: the README said the tests take about 20 minutes and, later, about 15."""
    text = README.read_text()
    statements = re.findall(r"about \d+ minutes on 2 cores", text)
    full_suite = [s for s in statements if not s.startswith("about 2 ")]
    assert len(full_suite) == 1, full_suite
