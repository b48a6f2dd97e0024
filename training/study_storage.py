"""A study shared by many tuners (`training.tune --storage URL --study NAME`): Optuna's storage is the
distributed engine, so any number of `training.tune` commands, on this machine (`--workers N`) or on
others, take trials from one study; this module opens that storage and keeps the study's rules.

- Each trial runs once: a worker starts a trial only while the study's finished and running trials are
  fewer than its budget, and a trial created past the budget by two workers at once is failed unrun.
- A worker killed mid-trial leaves its trial RUNNING; it is failed and queued once more (`retry_once`)
  when its heartbeat stops (a database) or, on this machine, when its process is gone (any storage:
  Optuna's journal file has no heartbeat). A retry is not retried.
- The budget is the study's: `--trials N` finished trials in the study, `--hours H` after its first
  trial started.
- A storage URL is never printed with its password, nor is an error message holding it.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import unquote

from training import study_files

JOURNAL = "journal:"
SCHEMES = ("postgresql+psycopg://", "postgresql://", "sqlite:///", JOURNAL)
CONNECT_SECONDS = 10
TABLE_RACE_ATTEMPTS = 5  # an unreachable database host is one line after this, not a hang
WORKER = f"{socket.gethostname()}:{os.getpid()}"
WORKER_VARIABLE = "TRAINING_TUNE_WORKER"  # set in the processes --workers starts


class StorageError(Exception):
    """A storage the tuner cannot use: one `error:` line, without the URL's password."""


class OverBudget(Exception):
    """This trial was created past the study's budget by workers starting at once: it is not run."""


def password_of(url: str) -> str | None:
    match = re.match(r"[^:/]+(?:\+[^:/]+)?://[^:/@]*:([^@]*)@", url)
    return match.group(1) if match and match.group(1) else None


def redact(text: str, url: str | None) -> str:
    """`text` with the URL's password (as written and percent-decoded) shown as ***."""
    password = password_of(url or "")
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return text


def check_url(url: str) -> str:
    """The storage's kind (postgresql, sqlite, journal), or a one-line refusal."""
    if not url.startswith(SCHEMES):
        raise StorageError(
            f"--storage must be postgresql+psycopg://USER@HOST/DATABASE, sqlite:///PATH or journal:PATH, got {redact(url, url)!r}"
        )
    if url.startswith(JOURNAL):
        check_local_file(Path(url[len(JOURNAL) :]), b'{"op_code"')
        return "journal"
    if url.startswith("sqlite:///"):
        check_local_file(Path(url[len("sqlite:///") :].split("?")[0]), study_files.SQLITE_HEADER)
        return "sqlite"
    return "postgresql"


def check_local_file(path: Path, header: bytes) -> None:
    """A storage file is new, empty or of its kind: Optuna writes its tables into anything it opens."""
    if path.is_symlink():
        raise StorageError(f"the storage {path} is a symbolic link; give the file itself")
    if path.is_dir():
        raise StorageError(f"the storage {path} is a folder; give a file")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as file:
            if not file.read(len(header)).startswith(header):
                raise StorageError(f"the storage {path} is another program's file; give a new or a study's file")


def open_storage(url: str, heartbeat: float, stale_trial_callback):
    """Optuna's storage for `url`; a database's with heartbeats, so a dead worker's trial is found."""
    for attempt in range(TABLE_RACE_ATTEMPTS):
        try:
            return new_storage(url, heartbeat, stale_trial_callback)
        except Exception as error:
            # Workers starting at once on an empty database race to create Optuna's tables: one wins,
            # the others fail on a duplicate and find the tables on the next try.
            if is_table_race(error) and attempt + 1 < TABLE_RACE_ATTEMPTS:
                time.sleep(0.5 + random.random())
                continue
            raise StorageError(f"the storage {redact(url, url)} cannot be opened: {one_line(error, url)}") from None


def is_table_race(error: BaseException) -> bool:
    return type(error).__name__ in ("IntegrityError", "ProgrammingError", "UniqueViolation", "DuplicateTable")


def new_storage(url: str, heartbeat: float, stale_trial_callback):
    import optuna

    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url[len(JOURNAL) :]))
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]  # psycopg 3, the `tune` extra's driver
    engine = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": CONNECT_SECONDS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are "experimental" in Optuna 5.0: said once, in the docs
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=max(1, round(heartbeat)),
            grace_period=max(3, round(3 * heartbeat)),  # three missed beats: a busy machine's worker is alive
            heartbeat_stale_trial_callback=stale_trial_callback,
        )


def one_line(error: BaseException, url: str | None) -> str:
    """A database error's first line (SQLAlchemy adds the statement and a link), without the password."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return redact(lines[0] if lines else type(error).__name__, url)


def is_storage_error(error: BaseException) -> bool:
    module = type(error).__module__
    return (
        module.startswith(("sqlalchemy", "psycopg", "optuna.storages"))
        or type(error).__name__ == "StorageInternalError"
    )


def open_shared_study(storage, name: str, description: dict, seed: int, pruner):
    """Create the study or join it, refusing one of other data, settings or space."""
    import optuna

    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        pruner=pruner,
        # constant_liar: workers drawing at once do not draw each other's running settings.
        sampler=optuna.samplers.TPESampler(seed=(seed + os.getpid()) % 2**32, constant_liar=True),
    )
    if "description" not in study.user_attrs:
        study.set_user_attr("description", description)
    return study


def retry_of(trial) -> int | None:
    return trial.user_attrs.get("retry_of")


def retry_once(record_interrupted):
    """The storage's stale-trial callback: a trial whose worker died is recorded and queued once more."""

    def callback(study, trial) -> None:
        record_interrupted(trial)
        queue_retry(study, trial)

    return callback


def queue_retry(study, trial) -> None:
    """Queue an interrupted trial's settings for any worker, unless it was itself a retry or is queued already."""
    if retry_of(trial) is not None:
        return
    if any(retry_of(other) == trial.number for other in study.get_trials(deepcopy=False)):
        return
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def fail_dead_workers(study, callback) -> None:
    """Fail the RUNNING trials whose worker was a process of this machine that is gone (a journal file
    has no heartbeat; on a database this finds them before the heartbeat's grace period)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = WORKER.rsplit(":", 1)[0]
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or process_alive(int(pid)):
            continue
        try:
            if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                callback(study, study._storage.get_trial(trial._trial_id))
        except UpdateFinishedTrialError:
            pass  # another worker failed it first


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counts(study) -> dict:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {
        "finished": sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "started": min((t.datetime_start.timestamp() for t in trials if t.datetime_start), default=None),
    }


def check_budget(study, trial, trials: float) -> None:
    """Refuse a trial that workers starting at once created past the budget: the earlier numbers win."""
    from optuna.trial import TrialState

    ahead = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    if sum(other.number < trial.number for other in ahead) >= trials:
        trial.set_user_attr("error", "over the study's budget: not run")
        if retry_of(trial) is not None:  # a queued retry goes back in the queue
            study.enqueue_trial(trial.params, user_attrs={"retry_of": retry_of(trial)})
        raise OverBudget


def run_shared_budget(study, objective, trials: float, hours: float | None, poll: float, callback) -> str:
    """Run trials until the study has `trials` finished ones or `hours` have passed since its first trial
    started; while the others' running trials may fill the budget, wait for them (they may die)."""
    import optuna

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental, as Optuna's own call to it says
            optuna.storages.fail_stale_trials(study)  # heartbeats stopped: failed, and retry_once runs
        fail_dead_workers(study, callback)
        state = counts(study)
        if state["finished"] >= trials:
            return f"the study has {state['finished']} finished trials"
        if hours is not None and state["started"] and time.time() >= state["started"] + hours * 3600:
            return f"{hours:g} hours passed since the study's first trial"
        if state["finished"] + state["running"] >= trials:
            time.sleep(poll)  # the running trials fill the budget, unless their workers die
            continue
        study.optimize(objective, n_trials=1, gc_after_trial=True, catch=(OverBudget,))


def start_workers(argv: list[str], workers: int) -> list:
    """--workers N: N - 1 more processes of this command (each one worker); this one is the first."""
    env = {**os.environ, WORKER_VARIABLE: "1"}  # tells main that it is one of them
    return [subprocess.Popen([sys.executable, "-m", "training.tune", *argv], env=env) for _ in range(workers - 1)]


def stop_workers(workers: list) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # recorded interrupted and queued again, as a Ctrl-C
    wait_workers(workers)


def wait_workers(workers: list) -> list[int]:
    codes = [worker.wait() for worker in workers]
    return [130 if code in (130, -signal.SIGINT, -signal.SIGTERM) else code and 1 for code in codes]
