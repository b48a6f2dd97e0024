"""What the README tells a user, checked against itself and the code."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_full_test_suite_time_is_stated_once():
    """Issue #34 item 2: the README said the tests take about 20 minutes and, later, about 15."""
    text = README.read_text()
    statements = re.findall(r"about \d+ minutes on 2 cores", text)
    full_suite = [s for s in statements if not s.startswith("about 2 ")]
    assert len(full_suite) == 1, full_suite


SERVING = README.parent / "docs" / "serving.md"


def status_rows(text: str) -> set[str]:
    return set(re.findall(r"^\| (\d{3}) \|", text, flags=re.MULTILINE))


def test_every_exit_status_of_the_cli_is_in_the_readme():
    """Issue #34 item 7: exit 3 (--explain of a bidirectional or attention model) was missing."""
    from runtime import predict

    documented = set(re.findall(r"\*\*(\d+)\*\*", README.read_text()))
    in_the_command = set(re.findall(r"(?:^\s*|; )(\d+) ", predict.__doc__.split("Exit status:")[1]))
    assert in_the_command >= {"0", "1", "2", "3", "130", "141"}, in_the_command
    assert in_the_command <= documented, in_the_command - documented


def test_the_explain_409_is_in_the_status_tables():
    """Issue #34 item 7: /v1/explain's 409 (a model with no opinion after each word) was missing."""
    assert "409" in status_rows(SERVING.read_text())
    assert "409" in README.read_text()


def test_the_python_examples_run_as_written():
    """Issue #34 item 5: the API example built an int8 classifier and the explain example then
    called explain on it, which has no int8 per-step artifact: a traceback. The README's Python
    blocks run one after the other, as a user pastes them, must finish without an error."""
    import subprocess
    import sys

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    script = "\n".join(blocks) + "\nprint(explanation.label)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "positive"


def test_the_export_commands_say_how_many_files_each_model_gets():
    """Issue #34 item 10: the README said export writes four .tflite files; the seed gets six
    (full, cached, per-step; float32 and int8), a model of the options four or two."""
    import dataclasses

    config_module = pytest.importorskip("export.config")
    from runtime.bundle import Manifest

    seed = Manifest.read(README.parent / "models" / "imdb-lstm").model_config
    models = {
        "the default model": seed,
        "a stacked model": dataclasses.replace(seed, layers=2),
        "a bidirectional or attention model": dataclasses.replace(seed, bidirectional=True),
    }
    words = {2: "two", 4: "four", 6: "six"}
    text = " ".join(README.read_text().split())
    for name, config in models.items():
        count = 2 * len(config_module.graphs_of(config))
        assert f"{words[count]} for {name}" in text, (name, count)
    assert "# four .tflite files" not in text
