"""training.tune --storage: a study shared by workers on a real PostgreSQL (a server the fixture starts
from Debian's `postgresql` package), one worker SIGKILLed mid-trial; each trial runs once, the killed
one is re-run once, the budget is the study's; --report from the storage alone; a hostile --storage is
one line and never shows a password. Tiny trials of one epoch."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("optuna", reason="needs the tune extra")
pytest.importorskip("keras", reason="needs the training extra")

from tests.conftest import ROOT, write_archive  # noqa: E402
from tests.training import postgres  # noqa: E402
from training import study_storage, tune  # noqa: E402

TINY = [
    "--limit", "60", "--vocab-size", "200", "--sequence-length", "40", "--word2vec-epochs", "0",
    "--lstm-units", "4", "--embedding-dim", "4", "--epochs", "1", "--batch-size", "32",
    "--layers", "1,2", "--adversarial", "0", "--distill", "0", "--quiet",
]  # fmt: skip

# A worker that dies by SIGKILL in the middle of its first trial. It calls itself a worker of another
# machine, so that its trial is found dead by its stopped heartbeat, as a remote worker's would be.
KILLED_WORKER = (
    "import os, signal, sys\n"
    "from training import fit, study_storage, tune\n"
    "study_storage.WORKER = 'another-machine:1'\n"
    "def killed(*args, **kwargs):\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
    "fit.fit_model = killed\n"
    "sys.exit(tune.main(sys.argv[1:]))\n"
)


@pytest.fixture(scope="module")
def server():
    if postgres.binaries() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; CI installs it)")
    with postgres.running_server() as running:
        yield running


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return write_archive(tmp_path_factory.mktemp("shared") / "small.tar.gz", per_folder=40)


def records(folder) -> list[dict]:
    path = folder / tune.RECORDS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def worker(archive, output, storage, *extra, script=None) -> subprocess.Popen:
    argv = ["--data", str(archive), "--output", str(output), "--storage", storage, *TINY, *extra]
    command = [sys.executable, "-c", script, *argv] if script else [sys.executable, "-m", "training.tune", *argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def study_trials(storage: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_three_workers_one_killed_finish_the_budget_once(server, archive, tmp_path, capsys):
    """A budget of 3 trials: exactly 3 complete, none run twice, the killed worker's trial re-run once."""
    storage, study, budget = server.socket_url, "three", "3"
    common = ("--study", study, "--trials", budget, "--heartbeat", "1", "--pruner", "none")
    survivors = [worker(archive, tmp_path / f"w-{n}", storage, *common) for n in (1, 2)]
    killed = worker(archive, tmp_path / "w-killed", storage, *common, script=KILLED_WORKER)  # the three at once
    outputs = [process.communicate(timeout=600) for process in survivors]
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert [process.returncode for process in survivors] == [0, 0], outputs

    trials = {trial.number: trial for trial in study_trials(storage, study)}
    complete = [n for n, trial in trials.items() if trial.state.name == "COMPLETE"]
    assert len(complete) == 3
    (dead,) = [n for n, trial in trials.items() if trial.user_attrs.get("worker") == "another-machine:1"]
    assert trials[dead].state.name == "FAIL" and "error" not in trials[dead].user_attrs  # interrupted
    (retry,) = [n for n, trial in trials.items() if trial.user_attrs.get("retry_of") == dead]
    assert retry in complete and trials[retry].params == trials[dead].params
    ran = [record for n in (1, 2) for record in records(tmp_path / f"w-{n}") if record["state"] == "complete"]
    assert sorted(record["trial"] for record in ran) == sorted(complete)  # each trial ran once, by one worker
    assert {record["state"] for n in (1, 2) for record in records(tmp_path / f"w-{n}")} <= {"complete", "interrupted"}
    assert all("Best: trial" in out and "python -m training.fit" in out for out, _ in outputs)

    # --report, from the storage alone: no data, no folder
    assert tune.main(["--storage", storage, "--study", study, "--report"]) == 0
    printed = capsys.readouterr().out
    assert f"Study 'three': {len(trials)} trials (3 complete" in printed and "1 interrupted" in printed
    assert "python -m training.fit --data" in printed and "Best: trial" in printed
    for number in complete:  # each trial's run folder, in its worker's --output, named in the report
        folder = Path(trials[number].user_attrs["folder"])
        assert folder.name == f"trial-{number:04d}" and folder.parent.name in ("w-1", "w-2")
        assert f"  {folder}" in printed and (folder / "bundle" / "manifest.json").is_file()


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql+psycopg://tuner:{password}@127.0.0.1:1/studies", "cannot be opened: connection failed"),
        ("{wrong_password}", "password authentication failed"),
        ("mysql://tuner:{password}@127.0.0.1/studies", "--storage must be postgresql+psycopg://"),
        ("postgresql+psycopg://tuner:{password}@127.0.0.1:notaport/studies", "cannot be opened"),
    ],
    ids=["unreachable", "wrong-password", "other-database", "malformed"],
)
def test_a_hostile_storage_is_one_line_without_its_password(server, archive, tmp_path, url, message, capsys):
    password = "hunter2-Secret%21"  # percent-encoded too: "hunter2-Secret!" must not show either
    url = url.format(password=password, wrong_password=server.loopback_url(password))
    argv = ["--data", str(archive), "--output", str(tmp_path / "w"), "--storage", url, *TINY, "--trials", "1"]
    assert tune.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert message in captured.err, captured.err
    assert "hunter2" not in captured.err and "Secret" not in captured.err
    assert not (tmp_path / "w").exists()  # refused before anything is written


def test_a_password_in_a_working_url_is_never_printed(server, archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tune, "train_trial", fake_training)
    url = server.loopback_url()
    argv = ["--data", str(archive), "--output", str(tmp_path / "w"), "--storage", url, "--study", "pw", *TINY]
    assert tune.main([*argv, "--trials", "1"]) == 0
    assert tune.main(["--storage", url, "--study", "pw", "--report"]) == 0
    assert tune.main(["--storage", url, "--study", "nothing", "--report"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err + (tmp_path / "w" / "study.json").read_text()
    assert postgres.PASSWORD not in text and "tuner:***@127.0.0.1" in captured.err
    assert "error: the storage holds no study 'nothing'" in captured.err


def fake_training(params, prepared, study_settings, verbose, trial=None, folder=None):
    """A train_trial that answers at once."""
    settings, config = tune.trial_settings(params, study_settings["settings"], study_settings["config"])
    return {
        "settings": tune.asdict(settings),
        "config": tune.asdict(config),
        "validation_accuracy": 0.5,
        "best_epoch": 1,
        "val_accuracy": (0.5,),
        "seconds": 0.1,
    }


def test_a_study_of_other_options_is_not_joined(server, archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tune, "train_trial", fake_training)
    url, study = server.socket_url, "other-options"
    base = ["--storage", url, "--study", study, "--data", str(archive), *TINY, "--trials", "1"]
    assert tune.main([*base, "--output", str(tmp_path / "a")]) == 0
    assert tune.main([*base, "--output", str(tmp_path / "b"), "--lstm-units", "4,8"]) == 1
    assert "the study 'other-options' holds a study of other space" in capsys.readouterr().err


def test_workers_on_a_journal_file_share_one_study(archive, tmp_path):
    """--workers 2 on Optuna's journal file: two processes, one study, the budget met once."""
    journal = tmp_path / "study.journal"
    process = worker(archive, tmp_path / "w", f"journal:{journal}", "--study", "j", "--workers", "2", "--trials", "3")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = study_trials(storage, "j")
    assert sorted(trial.state.name for trial in trials) == ["COMPLETE"] * 3
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2  # both processes took trials
    assert sorted(record["trial"] for record in records(tmp_path / "w")) == [0, 1, 2]


def test_the_median_pruner_stops_a_trial_below_the_median(tmp_path):
    import optuna

    study = optuna.create_study(direction="maximize", pruner=tune.pruner_of(SimpleNamespace(pruner="median")))
    for _ in range(5):  # five earlier trials at 0.9 in each epoch
        study.add_trial(optuna.create_trial(value=0.9, intermediate_values={0: 0.9, 1: 0.9, 2: 0.9}))
    trial = study.ask()
    reporter = tune.epoch_reporter(trial)
    reporter.set_model(SimpleNamespace(stop_training=False))
    reporter.on_epoch_end(0, {"val_accuracy": 0.5})
    assert not reporter.pruned and not reporter.model.stop_training  # the first epoch is never judged
    reporter.on_epoch_end(1, {"val_accuracy": 0.5})
    assert reporter.pruned and reporter.model.stop_training
    assert trial.should_prune()


def test_without_storage_workers_and_study_are_refused(tmp_path, capsys):
    assert tune.main(["--output", str(tmp_path / "w"), "--workers", "2"]) == 1
    assert "--workers N shares a study: give --storage" in capsys.readouterr().err
    assert tune.main(["--output", str(tmp_path / "w"), "--study", "x"]) == 1
    assert "--study names a study in --storage" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_a_redacted_url_hides_the_password_as_written_and_decoded():
    url = "postgresql+psycopg://u:p%40ss@h/db"
    assert study_storage.redact(f"{url} and p@ss", url) == "postgresql+psycopg://u:***@h/db and ***"


def test_ctrl_c_in_a_shared_study_queues_the_trial_for_any_worker(server, archive, tmp_path, monkeypatch, capsys):
    calls = []

    def interrupted_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return fake_training(*args, **kwargs)

    monkeypatch.setattr(tune, "train_trial", interrupted_first)
    url, study = server.socket_url, "ctrl-c"
    base = ["--storage", url, "--study", study, "--data", str(archive), *TINY, "--trials", "1"]
    assert tune.main([*base, "--output", str(tmp_path / "a")]) == 130
    assert capsys.readouterr().err.endswith("\ninterrupted: run the same command to resume the study 'ctrl-c'\n")
    assert tune.main([*base, "--output", str(tmp_path / "b")]) == 0  # another worker, another folder
    assert [(r["trial"], r["state"]) for r in records(tmp_path / "a")] == [(0, "interrupted")]
    assert [(r["trial"], r["state"], r["retry_of"]) for r in records(tmp_path / "b")] == [(1, "complete", 0)]


def test_a_pruned_trial_is_recorded_and_counted(archive, tmp_path, monkeypatch, capsys):
    def pruned_every_other(params, prepared, study_settings, verbose, trial=None, folder=None):
        return {**fake_training(params, prepared, study_settings, verbose), "pruned": trial.number % 2 == 1}

    monkeypatch.setattr(tune, "train_trial", pruned_every_other)
    output = tmp_path / "tune-pruned"
    assert tune.main(["--data", str(archive), "--output", str(output), *TINY, "--trials", "3"]) == 0
    assert [(r["trial"], r["state"]) for r in records(output)] == [(0, "complete"), (1, "pruned"), (2, "complete")]
    assert "trial 1: validation accuracy 0.5000 (epoch 1), 0 s, pruned after 1 epochs" in capsys.readouterr().err
    assert tune.main(["--output", str(output), "--report"]) == 0
    assert "Study 'tune': 3 trials (2 complete, 1 pruned)" in capsys.readouterr().out
