"""training.tune: a tiny study through training.fit's functions records every trial and resumes; an
interrupted or killed trial is marked and run again; the best trial is the best by validation accuracy;
no test figure is ever computed or recorded."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("optuna", reason="needs the tune extra")
pytest.importorskip("keras", reason="needs the training extra")

from tests.conftest import ROOT, write_archive  # noqa: E402
from training import fit, tune  # noqa: E402

TINY = [
    "--limit", "60", "--vocab-size", "200", "--sequence-length", "40", "--word2vec-epochs", "0",
    "--lstm-units", "4", "--embedding-dim", "4", "--epochs", "1", "--batch-size", "32",
    "--layers", "1,2", "--bidirectional", "false,true", "--attention", "false,true",
    "--adversarial", "0,0.5", "--distill", "0", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("tune") / "small.tar.gz", per_folder=40)


def records(output) -> list[dict]:
    return [json.loads(line) for line in (output / tune.RECORDS_FILE).read_text().splitlines()]


def run(archive, output, *extra) -> int:
    return tune.main(["--data", str(archive), "--output", str(output), *TINY, *extra])


@pytest.fixture
def no_test_evaluation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a trial evaluated on the test split")

    monkeypatch.setattr(fit, "evaluate", refuse)


def test_a_tiny_study_records_its_trials_and_resumes(archive, tmp_path, no_test_evaluation, capsys):
    output = tmp_path / "tune-tiny"
    assert run(archive, output, "--trials", "2") == 0
    first = records(output)
    assert [(r["trial"], r["state"]) for r in first] == [(0, "complete"), (1, "complete")]
    assert run(archive, output, "--trials", "3") == 0  # the same study, one trial more
    every = records(output)
    assert every[:2] == first and [(r["trial"], r["state"]) for r in every[2:]] == [(2, "complete")]
    for record in every:
        assert len(record["val_accuracy"]) == 1 and record["validation_accuracy"] == record["val_accuracy"][0]
        assert record["settings"]["epochs"] == 1 and record["config"]["lstm_units"] == 4 and record["seconds"] > 0
    assert (output / tune.STUDY_FILE).is_file()
    text = (output / tune.RECORDS_FILE).read_text() + capsys.readouterr().out
    assert "test_accuracy" not in text and "test_loss" not in text
    assert not any(key.startswith("test") for record in every for key in record)


def test_an_interrupted_trial_is_recorded_and_run_again(archive, tmp_path, monkeypatch, capsys):
    output, real_fit_model, calls = tmp_path / "tune-interrupted", fit.fit_model, []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or SIGTERM, which the tuner turns into it) mid-trial
        return real_fit_model(*args, **kwargs)

    monkeypatch.setattr(fit, "fit_model", interrupted_second)
    assert run(archive, output, "--trials", "3") == 130
    assert [(r["trial"], r["state"]) for r in records(output)] == [(0, "complete"), (1, "interrupted")]
    assert run(archive, output, "--trials", "2") == 0
    every = records(output)
    assert [(r["trial"], r["state"], r["retry_of"]) for r in every] == [
        (0, "complete", None),
        (1, "interrupted", None),
        (2, "complete", 1),
    ]
    assert every[2]["params"] == every[1]["params"]  # the interrupted settings, run again once
    assert "were interrupted and run again first" in capsys.readouterr().err


def test_a_killed_study_resumes(archive, tmp_path):
    """kill -9 in the middle of the first trial leaves it running in the study; the next run marks it
    interrupted and runs its settings again."""
    output = tmp_path / "tune-killed"
    script = (
        "import os, signal, sys\n"
        "from training import fit, tune\n"
        "fit.fit_model = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "sys.exit(tune.main(sys.argv[1:]))\n"
    )
    argv = ["--data", str(archive), "--output", str(output), *TINY, "--trials", "1"]
    killed = subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, env=os.environ)
    assert killed.returncode == -signal.SIGKILL
    assert not (output / tune.RECORDS_FILE).exists()  # nothing could be written when it died
    assert tune.main(argv) == 0
    every = records(output)
    assert [(r["trial"], r["state"], r["retry_of"]) for r in every] == [(0, "interrupted", None), (1, "complete", 0)]
    assert every[1]["params"] == every[0]["params"]


def fake_training(accuracies: dict):
    """A train_trial that answers at once: its validation accuracy is a function of the units."""

    def train_trial(params, prepared, study_settings, verbose):
        settings, config = tune.trial_settings(params, study_settings["settings"], study_settings["config"])
        accuracy = accuracies[params["lstm_units"]]
        return {
            "settings": tune.asdict(settings),
            "config": tune.asdict(config),
            "validation_accuracy": accuracy,
            "best_epoch": 2,
            "val_accuracy": (accuracy - 0.1, accuracy),
            "seconds": 0.1,
        }

    return train_trial


def test_the_best_trial_is_the_best_by_validation_accuracy(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tune, "train_trial", fake_training({4: 0.61, 7: 0.83, 9: 0.72}))
    output = tmp_path / "tune-best"
    assert run(archive, output, "--trials", "8", "--lstm-units", "4,7,9", "--learning-rate", "0.002") == 0
    every = records(output)
    best = max(every, key=lambda record: record["validation_accuracy"])
    assert best["params"]["lstm_units"] == 7
    printed = capsys.readouterr().out
    assert f"Best: trial {best['trial']}, validation accuracy 0.8300" in printed
    command = next(line.strip() for line in printed.splitlines() if "python -m training.fit" in line)
    assert "--lstm-units 7 " in command and "--learning-rate 0.002" in command and "--limit" not in command
    assert f"--layers {best['params']['layers']}" in command or best["params"]["layers"] == 1
    assert ("--bidirectional" in command) == best["params"]["bidirectional"]


def test_a_study_with_other_options_is_not_resumed(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tune, "train_trial", fake_training({4: 0.5, 8: 0.6}))
    output = tmp_path / "tune-changed"
    assert run(archive, output, "--trials", "1") == 0
    assert run(archive, output, "--trials", "2", "--lstm-units", "4,8") == 1
    assert "holds a study of other space" in capsys.readouterr().err
    assert len(records(output)) == 1


def test_the_hours_budget_stops_between_trials(archive, tmp_path, monkeypatch, capsys):
    slow = fake_training({4: 0.5})

    def half_a_second(*args):
        time.sleep(0.5)
        return slow(*args)

    monkeypatch.setattr(tune, "train_trial", half_a_second)
    output = tmp_path / "tune-hours"
    assert run(archive, output, "--hours", "0.0001") == 0  # 0.36 s: the first trial overruns it, no second starts
    assert len(records(output)) == 1
    assert "hours passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--layers", "1:3"], "a range is for a real-valued setting"),
        (["--learning-rate", "0:0.01"], "expected 0 <= LOW < HIGH"),
        (["--bidirectional", "maybe"], "expected true or false"),
    ],
)
def test_nonsense_search_flags_exit_non_zero(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        tune.main(["--output", str(tmp_path / "tune"), *argv])
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_a_space_training_fit_would_refuse_is_refused_before_anything_is_written(tmp_path, capsys):
    assert tune.main(["--output", str(tmp_path / "tune"), "--layers", "1,4"]) == 1
    assert "layers must be an integer from 1 to 3" in capsys.readouterr().err
    assert not (tmp_path / "tune").exists()


def test_a_bundle_is_never_a_studys_folder(tmp_path, capsys):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text("{}")
    assert tune.main(["--output", str(tmp_path / "bundle"), "--trials", "1"]) == 1
    assert "is a model bundle" in capsys.readouterr().err


def test_data_that_cannot_be_read_leaves_no_study_behind(archive, tmp_path, no_test_evaluation):
    """A mistyped --data wrote a study of the wrong data, which then refused the corrected command."""
    output = tmp_path / "tune-typo"
    assert tune.main(["--data", str(tmp_path / "no-such.tar.gz"), "--output", str(output), *TINY]) == 1
    assert not output.exists()
    assert run(archive, output, "--trials", "1") == 0
    assert [record["state"] for record in records(output)] == ["complete"]
