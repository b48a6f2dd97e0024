"""training.tune: a tiny study through training.fit's functions records every trial and resumes; an
interrupted or killed trial is marked and run again; the best trial is the best by validation accuracy;
no test figure is ever computed or recorded."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("optuna", reason="needs the tune extra")
pytest.importorskip("keras", reason="needs the training extra")

from runtime import bundle  # noqa: E402
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


def test_each_trial_has_a_run_folder_with_its_log_and_bundle(archive, tmp_path, no_test_evaluation, capsys):
    """OUTPUT/trial-NNNN: what the trial printed (trial.log) and its model as a bundle with validation
    figures and no test ones; the records, the best trial's lines and --report say where."""
    output = tmp_path / "tune-folders"
    assert run(archive, output, "--trials", "2") == 0
    summary = capsys.readouterr().out
    every = records(output)
    for record in every:
        folder = output / f"trial-{record['trial']:04d}"
        assert record["folder"] == str(folder.resolve())
        assert f"trial {record['trial']}: " in (folder / "trial.log").read_text()
        manifest = bundle.Bundle.open(folder / "bundle").manifest  # a bundle the runtime opens
        assert manifest.name == f"imdb-lstm-trial-{record['trial']}"  # fit's name for IMDB data
        assert manifest.metrics.validation_accuracy == pytest.approx(record["validation_accuracy"], abs=1e-5)
        assert manifest.metrics.test_accuracy is None and manifest.training.data.test_reviews is None
        assert not (folder / "bundle" / "metrics.json").exists()
    best = max(every, key=lambda record: record["validation_accuracy"])
    assert f"Its bundle (validation figures only), on {socket.gethostname()}: {best['folder']}/bundle" in summary
    assert tune.main(["--output", str(output), "--report"]) == 0
    report = capsys.readouterr().out
    assert all(record["folder"] in report for record in every)
    assert run(archive, output, "--trials", "3") == 0  # its trial folders do not make it somebody else's folder
    assert [r["trial"] for r in records(output)] == [0, 1, 2]


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

    def train_trial(params, prepared, study_settings, verbose, trial=None, folder=None):
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

    def half_a_second(*args, **kwargs):
        time.sleep(0.5)
        return slow(*args, **kwargs)

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


# Hostile probe #33: Ctrl-C, links in the study folder, a study.db that is not the study's.

# TensorFlow's C++ log lines, which it prints as it loads whatever the environment says (not the tuner's).
TENSORFLOW_LOG = re.compile(r"WARNING: All log messages before absl|[IWE]\d{4} \d\d:")
LEAVES_A_GRAPH_ENTERED = (
    "import sys\n"
    "from training import fit, tune\n"
    "entered = []\n"
    "def interrupted_while_tracing(*args, **kwargs):\n"
    "    import tensorflow as tf\n"
    "    entered.append(tf.Graph().as_default())\n"
    "    entered[-1].__enter__()  # what a Ctrl-C inside tf.function's tracing leaves behind\n"
    "    raise KeyboardInterrupt\n"
    "fit.fit_model = interrupted_while_tracing\n"
    "sys.exit(tune.main(sys.argv[1:]))\n"
)


def test_ctrl_c_while_tracing_is_an_interruption_of_one_line(archive, tmp_path):
    """clear_session() raised over the KeyboardInterrupt (the trial recorded failed, never re-run, exit 1
    with a traceback), and Optuna printed its own traceback on every Ctrl-C."""
    output = tmp_path / "tune-ctrl-c"
    argv = ["--data", str(archive), "--output", str(output), *TINY, "--trials", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", LEAVES_A_GRAPH_ENTERED, *argv], cwd=ROOT, capture_output=True, env=env)
    stderr = done.stderr.decode()
    assert done.returncode == 130, stderr
    after_trial = stderr[stderr.index("trial 0:") :].splitlines()[1:]
    assert [line for line in after_trial if line.strip() and not TENSORFLOW_LOG.match(line)] == [
        f"interrupted: run the same command to resume the study in {output}"
    ]
    assert "Traceback" not in stderr
    assert [r["state"] for r in records(output)] == ["interrupted"]
    assert tune.main(argv) == 0  # resumed: the interrupted settings are run again once
    assert [(r["trial"], r["state"], r["retry_of"]) for r in records(output)] == [
        (0, "interrupted", None),
        (1, "complete", 0),
    ]


@pytest.fixture
def finished_study(archive, tmp_path, monkeypatch):
    """A study folder holding one finished trial (trained by a stand-in at once)."""
    monkeypatch.setattr(tune, "train_trial", fake_training({4: 0.5}))
    output = tmp_path / "tune-study"
    assert run(archive, output, "--trials", "1") == 0
    return output


@pytest.mark.parametrize("name", ["tune.lock", "study.json", "trials.jsonl"])
def test_a_link_in_the_study_folder_is_refused_and_its_target_untouched(
    finished_study, archive, tmp_path, name, capsys
):
    victim = tmp_path / "victim.txt"
    victim.write_text("somebody's precious file\n")
    (finished_study / name).unlink()
    (finished_study / name).symlink_to(victim)
    capsys.readouterr()
    assert run(archive, finished_study, "--trials", "2") == 1
    assert victim.read_text() == "somebody's precious file\n"
    error = capsys.readouterr().err
    assert error == f"error: {finished_study / name} is a symbolic link; the tuner writes only its own files\n"


def test_study_json_is_replaced_whole(finished_study, archive):
    before = (finished_study / "study.json").stat().st_ino
    assert run(archive, finished_study, "--trials", "2") == 0
    assert (finished_study / "study.json").stat().st_ino != before  # renamed into place, not rewritten in place
    assert json.loads((finished_study / "study.json").read_text())["space"]["lstm_units"] == "4"
    assert [path.name for path in finished_study.iterdir() if path.name.startswith(".")] == []


def sqlite_file_of_another_program(path):
    import sqlite3

    path.unlink()
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        connection.execute("INSERT INTO invoices (total) VALUES (12.5)")
    connection.close()


def a_folder(path):
    path.unlink()
    path.mkdir()
    (path / "keep").write_text("kept")


def truncate_to_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "spoil, reason",
    [
        (lambda path: path.write_bytes(b""), "empty"),
        (lambda path: path.write_bytes(b"not a database\n" * 10), "not a SQLite database"),
        (sqlite_file_of_another_program, "another program's SQLite database, holding no tuner study"),
        (truncate_to_half, "damaged"),
        (a_folder, "not a file"),
    ],
    ids=["empty", "text", "foreign-sqlite", "truncated", "folder"],
)
def test_a_study_db_that_is_not_the_studys_is_refused(finished_study, archive, spoil, reason, capsys):
    """An empty or foreign study.db started a new study (trial numbers repeated in trials.jsonl); a
    truncated one ended in a SQLAlchemy traceback."""
    study_db = finished_study / tune.STUDY_FILE
    spoil(study_db)
    spoiled = study_db.read_bytes() if study_db.is_file() else None
    capsys.readouterr()
    assert run(archive, finished_study, "--trials", "2") == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {study_db} is not this tuner's study ({reason}") and error.count("\n") == 1
    assert (study_db.read_bytes() if study_db.is_file() else None) == spoiled  # nothing written into it
    assert [r["trial"] for r in records(finished_study)] == [0]


def test_a_torn_last_record_keeps_the_next_record_on_its_own_line(finished_study, archive):
    path = finished_study / tune.RECORDS_FILE
    torn = path.read_text() + '{"trial":1,"state":"compl'  # a power cut in the middle of a write
    path.write_text(torn)
    assert run(archive, finished_study, "--trials", "2") == 0
    lines = path.read_text().splitlines()
    assert path.read_text().startswith(torn + "\n") and len(lines) == 3
    assert json.loads(lines[2])["trial"] == 1 and json.loads(lines[2])["state"] == "complete"
    assert [r["trial"] for r in tune.read_records(finished_study)] == [0, 1]  # the torn line is skipped


def test_a_seed_out_of_range_is_refused_before_anything_is_written(archive, tmp_path, monkeypatch, capsys):
    """--seed 4294967296 failed after study.db was written, and the leftover refused the corrected command."""
    monkeypatch.setattr(tune, "train_trial", fake_training({4: 0.5}))
    output = tmp_path / "tune-seed"
    assert run(archive, output, "--trials", "1", "--seed", "4294967296") == 1
    assert capsys.readouterr().err == "error: --seed must be from 0 to 4294967294, got 4294967296\n"
    assert not output.exists()
    assert run(archive, output, "--trials", "1", "--seed", "4294967294") == 0


def test_a_dangling_link_as_the_output_is_one_line(tmp_path, capsys):
    (tmp_path / "tune-link").symlink_to(tmp_path / "nowhere")
    assert tune.main(["--output", str(tmp_path / "tune-link"), "--trials", "1"]) == 1
    error = capsys.readouterr().err
    assert (
        error == f"error: {tmp_path / 'tune-link'} is a symbolic link to {tmp_path / 'nowhere'}, which does not exist\n"
    )
    assert not (tmp_path / "nowhere").exists()
