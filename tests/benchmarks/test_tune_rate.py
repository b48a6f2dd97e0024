"""benchmarks.tune_rate, for correctness only (no timing is asserted): on a tiny search, each count of
workers runs its own study to the budget, the JSON says on what machine, and the table renders into
docs/tuning.md's block."""

import json

import pytest

pytest.importorskip("optuna", reason="needs the tune extra")
pytest.importorskip("keras", reason="needs the training extra")

from benchmarks import tune_rate  # noqa: E402
from scripts import update_readme  # noqa: E402
from tests.conftest import ROOT, write_archive  # noqa: E402

TINY = [
    "--limit", "60", "--vocab-size", "200", "--sequence-length", "40", "--lstm-units", "4",
    "--embedding-dim", "4", "--epochs", "1",
]  # fmt: skip


def test_a_tiny_measurement_runs_each_count_to_the_budget(tmp_path, monkeypatch, capsys):
    archive = write_archive(tmp_path / "small.tar.gz", per_folder=40)
    monkeypatch.chdir(ROOT)  # python -m training.tune, as from the repository root
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    output, work = tmp_path / "rate.json", tmp_path / "work"
    argv = ["--data", str(archive), "--workers", "1,2", "--trials", "2", "--work", str(work), "--output", str(output)]
    assert tune_rate.main([*argv, "--", *TINY]) == 0
    results = json.loads(output.read_text())
    assert [row["workers"] for row in results["rows"]] == [1, 2]
    assert all(row["complete_trials"] == 2 and row["trials_per_hour"] > 0 for row in results["rows"])
    assert results["rows"][1]["processes_seen"] in (1, 2)  # a fast worker may take both trials
    assert {"cpu", "cores", "date", "versions"} <= set(results["machine"]) and len(results["load_average_before"]) == 3
    assert "--limit 60" in results["command"] and "--workers N" in results["command"]
    table = capsys.readouterr().out
    assert "| 1 | 2 |" in table and "| 2 | 2 |" in table and f"{results['machine']['cores']} cores" in table

    # each count is a new study: the same --work again is one line, exit 1
    assert tune_rate.main([*argv, "--", *TINY]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_table_renders_into_the_docs_block():
    results = {
        "machine": {"cpu": "Test CPU", "cores": 4, "date": "2026-12-05T20:00:00+00:00"},
        "load_average_before": [0.1, 0.2, 0.3],
        "data": "aclImdb_labeled.tar.gz",
        "trials": 12,
        "command": "python -m training.tune ... --workers N",
        "rows": [
            {
                "workers": count,
                "complete_trials": 12,
                "wall_seconds": 3600 / count,
                "trials_per_hour": 12.0 * count,
                "trial_seconds_median": 300,
                "trials_per_hour_once_loaded": 13.0 * count,
            }
            for count in (1, 2, 3)
        ],
    }
    table = tune_rate.table(results)
    assert "| 3 | 12 | 20.0 min | 36.0 | 3.00x | 39.0 | 300 s |" in table
    assert "Test CPU, 4 cores, load average 0.1" in table
    docs = (ROOT / "docs" / "tuning.md").read_text()
    assert table in update_readme.replace_block(docs, "tune-rate", table, "docs/tuning.md")


def test_bad_worker_counts_are_a_usage_error(capsys):
    for counts in ("0,1", "1,1", "one"):
        with pytest.raises(SystemExit) as exit:
            tune_rate.main(["--workers", counts])
        assert exit.value.code == 2
    assert "expected" in capsys.readouterr().err
