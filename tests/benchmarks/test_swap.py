"""The swap benchmark's harness, with small counts: it publishes, installs and checks for updates
over loopback, swaps under load, writes its JSON and renders docs/fleet.md's block; no time is asserted."""

import json

import pytest

pytest.importorskip("tuf.ngclient", reason="the benchmark publishes and updates (the fleet extra)")
pytest.importorskip("uvicorn", reason="the benchmark runs the server (the serve extra)")

from benchmarks import swap  # noqa: E402


def test_measures_and_renders(tmp_path, capsys):
    output = tmp_path / "swap.json"
    argv = ["--clients", "4", "--swaps", "2", "--checks", "1", "--quiet-seconds", "0.5", "--output", str(output)]
    assert swap.main(argv) == 0
    results = json.loads(output.read_text())
    assert results["swaps"]["requests_lost"] == 0 and results["swaps"]["swaps"] == 2
    assert results["swaps"]["versions_answering"] == ["2", "3"]
    assert results["update_check"]["installs_exit_status"] == [0, 0]
    assert any("timestamp.json 200" in request for request in results["update_check"]["requests_per_check"])
    assert "| requests lost while swapping | **0 of" in swap.markdown(results)
    assert results["machine"]["cores"] and results["machine"]["date"]
