"""The command line, run as a user runs it: in a subprocess."""

import json
import re
import subprocess
import sys

import pytest

from tests.runtime.conftest import NEGATIVE, POSITIVE


def run_cli(*args, input=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "runtime.predict", *args], input=input, capture_output=True, timeout=timeout
    )


def test_the_readme_example_is_positive():
    result = run_cli("A wonderful film with a brilliant cast.")
    assert result.returncode == 0, result.stderr.decode()
    (line,) = result.stdout.decode().splitlines()
    output = json.loads(line)
    assert output["label"] == "positive" and set(output["probabilities"]) == {"negative", "positive"}


def test_arguments_stdin_and_text_format(bundle_dir):
    result = run_cli(
        "--model",
        str(bundle_dir),
        "--format",
        "text",
        POSITIVE,
        "-",
        NEGATIVE,
        input=f"{NEGATIVE}\n{POSITIVE}\n".encode(),
    )
    assert result.returncode == 0, result.stderr.decode()
    labels = [line.split("\t")[1] for line in result.stdout.decode().splitlines()]
    assert labels == ["positive", "negative", "positive", "negative"]


def test_jsonl_input(bundle_dir, tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps({"text": POSITIVE}) + "\n" + json.dumps(NEGATIVE) + "\n" + '{"text": 3}\n')
    result = run_cli("--model", str(bundle_dir), "--jsonl", "--file", str(path))
    outputs = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [output.get("label") for output in outputs] == ["positive", "negative", None]
    assert "expected a JSON string" in outputs[2]["error"]
    assert result.returncode == 1


def test_invalid_utf8_line_is_reported_and_the_rest_classified(bundle_dir, tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(POSITIVE.encode() + b"\n\xff\xfe broken \xc3\n" + NEGATIVE.encode() + b"\n!!!\n")
    result = run_cli("--model", str(bundle_dir), "--file", str(path))
    outputs = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [output["index"] for output in outputs] == [0, 1, 2, 3]
    assert outputs[0]["label"] == "positive" and outputs[2]["label"] == "negative"
    assert "invalid UTF-8" in outputs[1]["error"] and "no words" in outputs[3]["error"]
    assert result.returncode == 1
    assert b"2 review(s) could not be classified" in result.stderr


def test_blank_lines_of_a_file_are_skipped_and_help_says_so(bundle_dir, tmp_path):
    """Issue #34 item 3: a blank line counted as a failed review and the run exited 1."""
    path = tmp_path / "reviews.txt"
    path.write_text(f"{POSITIVE}\n\n   \r\n{NEGATIVE}\n\n")
    result = run_cli("--model", str(bundle_dir), "--file", str(path))
    assert result.returncode == 0, result.stderr.decode()
    outputs = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(output["index"], output["label"]) for output in outputs] == [(0, "positive"), (1, "negative")]
    help_text = " ".join(run_cli("--help").stdout.decode().split())
    assert "blank lines are skipped" in help_text


@pytest.mark.slow
def test_a_file_of_100000_lines(bundle_dir, tmp_path):
    path = tmp_path / "many.txt"
    with open(path, "w") as handle:
        for index in range(100_000):
            handle.write(("great fun" if index % 2 else "boring mess") + f" {index}\n")
    result = run_cli("--model", str(bundle_dir), "--format", "text", "--file", str(path), timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-500:]
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 100_000 and lines[-1].startswith("99999\t")


def test_input_is_streamed_not_read_whole(bundle_dir):
    """Answers come out while standard input is still open."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.predict", "--model", str(bundle_dir), "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        # 300 reviews fit in the pipe, and their answers overflow the CLI's output buffer
        process.stdin.write((POSITIVE + "\n").encode() * 300)
        process.stdin.flush()
        first = process.stdout.readline()  # would block forever if the CLI waited for end of input
        assert json.loads(first)["label"] == "positive"
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/bundle", "good"], "no such model bundle folder"),
        (["--file", "/nonexistent/reviews.txt"], "no such file"),
        (["--backend", "tpu", "good"], "invalid choice"),
        (["--threads", "0", "good"], "must be an integer from 1 to 64"),
    ],
)
def test_bad_invocations_exit_non_zero_with_a_message(args, message):
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_every_bad_line_is_reported_on_its_line_and_the_run_goes_on(bundle_dir, tmp_path):
    """Finding 10: a deeply nested line, a 5,000-digit number or a huge line ended the whole run."""
    from runtime.predict import MAX_LINE_BYTES

    path = tmp_path / "hostile.jsonl"
    with open(path, "wb") as handle:
        handle.write(json.dumps(POSITIVE).encode() + b"\n")
        handle.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        handle.write(b"9" * 5000 + b"\n")
        handle.write(b'"' + b"a" * (MAX_LINE_BYTES + 10) + b'"\n')
        handle.write(json.dumps({"text": NEGATIVE}).encode() + b"\n")
    result = run_cli("--model", str(bundle_dir), "--jsonl", "--file", str(path))
    outputs = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [output.get("label") for output in outputs] == ["positive", None, None, None, "negative"]
    assert "nested too deeply" in outputs[1]["error"] and "not JSON" in outputs[2]["error"]
    assert "line longer than" in outputs[3]["error"]
    assert result.returncode == 1 and b"Traceback" not in result.stderr


def test_a_closed_output_pipe_ends_quietly(bundle_dir):
    """Finding 10: `| head -1` ended in a BrokenPipeError traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.predict", "--model", str(bundle_dir), "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader goes away before the first answer
    _, err = process.communicate(("great fun\n" * 20_000).encode(), timeout=300)
    assert process.returncode == 141 and err == b""


def test_piped_input_needs_no_dash_and_nothing_is_printed_on_stderr(bundle_dir):
    result = run_cli("--model", str(bundle_dir), input=f"{POSITIVE}\n".encode())
    assert result.returncode == 0 and result.stderr == b""
    assert json.loads(result.stdout)["label"] == "positive"


@pytest.mark.parametrize("threads", ["0", "65", "65536", "many"])
def test_thread_counts_out_of_range_are_usage_errors(threads):
    result = run_cli("--threads", threads, "a fine film")
    assert result.returncode == 2 and b"must be an integer from 1 to 64" in result.stderr


HOSTILE = "\x1b]0;PWNED\x07\x1b[2J A wonderful film \u202ewith\u200b a brilliant\x9b cast.\r"


def test_text_output_shows_a_review_s_control_characters_escaped(bundle_dir):
    """A review's terminal escapes (a title change, a screen clear, a C1 CSI, a bidi override) were printed raw."""
    for args in (["--format", "text"], ["--explain", "--format", "text"]):
        result = run_cli("--model", str(bundle_dir), *args, HOSTILE)
        assert result.returncode == 0, result.stderr.decode()
        out = result.stdout.decode("utf-8")
        assert not any(c in out for c in "\x1b\x07\x9b\u202e\u200b\r"), (args, out)
        shown = re.sub(r"\([+-]\d\.\d\d\)", "", out)  # explain marks strong words with their effect
        assert "\\x1b]0" in shown and "PWNED\\x07\\x1b[2J" in shown and "\\u202ewith\\u200b" in shown
        assert "\\x9b" in shown


def test_json_output_escapes_every_control_character_and_keeps_other_text(bundle_dir):
    for args in ([], ["--explain"]):
        result = run_cli("--model", str(bundle_dir), *args, HOSTILE + " naïve 良い")
        out = result.stdout.decode("utf-8")
        assert result.returncode == 0 and not any(c in out for c in "\x1b\x07\x9b\u202e\u200b\r"), out
        json.loads(out)
    from runtime.predict import json_line

    line = json_line({"text": "a\x9b\u202eb\U000e0041 ünï 良い"})
    assert line == '{"text": "a\\u009b\\u202eb\\udb40\\udc41 ünï 良い"}'
    assert json.loads(line) == {"text": "a\x9b\u202eb\U000e0041 ünï 良い"}


def test_coloured_explanation_has_no_escape_but_its_own_colours(bundle_dir):
    import re

    from runtime import SentimentClassifier
    from runtime.predict import format_explanation

    with SentimentClassifier.from_bundle(bundle_dir) as classifier:
        shown = format_explanation(0, HOSTILE, classifier.explain(HOSTILE), None, "text", colour=True)
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert "\x07" not in shown and "\u202e" not in shown


def test_ctrl_c_over_a_large_file_is_one_line_and_status_130(bundle_dir, tmp_path):
    """Ctrl-C printed a 24-line KeyboardInterrupt traceback."""
    import signal

    path = tmp_path / "large.txt"
    path.write_text("great fun\nboring mess\n" * 500_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.predict", "--model", str(bundle_dir), "--file", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Ctrl-C as at a terminal: a shell's background job (a CI step run with &) starts with
        # SIGINT ignored, and Python then keeps it ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert json.loads(process.stdout.readline())["index"] == 0  # it is classifying
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert err.decode().splitlines() == ["interrupted"]


@pytest.mark.parametrize("path, message", [("/dev/zero", "not a file or a pipe"), ("/", "is a folder")])
def test_a_device_or_a_folder_is_refused_clearly(path, message):
    """`--file /dev/zero` said "no such file"."""
    result = run_cli("--file", path, timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 1 and result.stdout == b""
    assert err.startswith(f"error: {path}: {message}") and err.count("\n") == 1


def test_file_dash_reads_standard_input(bundle_dir):
    """`--file -` said "-: no such file"; the README and its own error message offer '-'."""
    result = run_cli("--model", str(bundle_dir), "--file", "-", input=f"{POSITIVE}\n{NEGATIVE}\n".encode())
    assert result.returncode == 0, result.stderr.decode()
    assert [json.loads(line)["label"] for line in result.stdout.decode().splitlines()] == ["positive", "negative"]


def test_a_pipe_is_read_as_a_file(bundle_dir, tmp_path):
    """`--file <(zcat reviews.gz)`: process substitution gives a pipe, which is read as a file."""
    import os
    import threading

    fifo = tmp_path / "reviews.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(f"{POSITIVE}\n{NEGATIVE}\n"))
    writer.start()
    result = run_cli("--model", str(bundle_dir), "--file", str(fifo))
    if writer.is_alive():  # the CLI never opened the pipe: open it here, so the writer ends
        fifo.read_bytes()
    writer.join()
    assert result.returncode == 0, result.stderr.decode()
    assert [json.loads(line)["label"] for line in result.stdout.decode().splitlines()] == ["positive", "negative"]


def test_an_unreadable_file_is_one_error_line(tmp_path):
    import os

    path = tmp_path / "secret.txt"
    path.write_text("a fine film\n")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as a user who can read anything (root)")
    result = run_cli("--file", str(path))
    assert result.returncode == 1 and result.stderr.decode() == f"error: {path}: Permission denied\n"


def unverified_copy(bundle_dir, tmp_path):
    """A copy of the bundle whose artifacts have no parity records: each one warns when loaded."""
    import shutil

    from runtime import bundle

    folder = shutil.copytree(bundle_dir, tmp_path / "unverified", ignore=shutil.ignore_patterns("model.keras"))
    manifest = bundle.read_manifest(folder)
    manifest["parity"] = {}
    bundle.write_manifest(folder, manifest)
    return folder


def test_explain_with_unverified_artifacts_warns_in_one_line(bundle_dir, tmp_path):
    """explain printed a raw Python warning with a source line (classifier.py:259 ... self._steps = ...)."""
    folder = unverified_copy(bundle_dir, tmp_path)
    result = run_cli("--model", str(folder), "--allow-unverified", "--explain", "--format", "json", POSITIVE, NEGATIVE)
    assert result.returncode == 0, result.stderr.decode()
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("warning: ") and line.endswith("loaded without a passing parity record")
    assert len(result.stdout.decode().splitlines()) == 2
