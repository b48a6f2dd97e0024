"""The tuner's study: opened or resumed in the folder's study.db, or created or joined in --storage,
and refused if it was started with other data, settings or space (its description); the trials a dead
run left running recorded as interrupted and queued once more; the pruner; the one-at-a-time budget loop.

The storage of a shared study is training/study_storage.py, the folder's files training/study_files.py.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.config import ModelConfig
from training import cli as training_cli
from training import study_files, study_storage
from training.settings import TrainingSettings
from training.study_report import finished
from training.trials import append_record, interrupted_record

STUDY_NAME = "tune"


def recover_interrupted(study, storage, output: Path, study_settings: dict) -> list[int]:
    """Mark the trials a dead run left running as failed (recorded as interrupted) and queue each interrupted
    trial's settings once more, unless that was done or the trial was itself a retry; return their numbers."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {trial.user_attrs.get("retry_of") for trial in trials}
    queued = []
    for trial in trials:
        if trial.state == TrialState.RUNNING:  # killed mid-trial: no process runs it (the lock says so)
            # The storage API takes the trial's id, which FrozenTrial keeps as _trial_id (so does Optuna's own code).
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)  # a finished trial takes none
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            append_record(output, interrupted_record(trial, study_settings))
        elif trial.state != TrialState.FAIL or "error" in trial.user_attrs:
            continue  # finished, or failed with an error (not retried); a Ctrl-C anywhere leaves no error
        if trial.number not in retried and trial.user_attrs.get("retry_of") is None:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            queued.append(trial.number)
    return queued


def study_description(args, space, settings: TrainingSettings, config: ModelConfig) -> dict:
    """What makes a study the same study: its data, fixed settings and search space (resuming checks it)."""
    return {
        "data": args.data,
        "data_options": asdict(training_cli.data_options_from(args)),
        "test_split": args.test_split,
        "space": {param.name: param.describe() for param in space},
        "settings": asdict(settings),
        "config": config.to_dict(),
    }


def open_study(output: Path, description: dict, seed: int, pruner=None):
    """Create the study, or load it and check that it was started with the same data, settings and space."""
    import optuna

    # The tuner prints its own lines; Optuna's warning on a Ctrl-C is a 15-line traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    path = output / study_files.STUDY_FILE
    resuming = os.path.lexists(path)
    if resuming:
        study_files.check_study_db(path, STUDY_NAME)  # a study.db of nothing or of another program: refused
    else:
        study_files.create_study_db(output, lambda url: create_study(url, description))
    storage = optuna.storages.RDBStorage(study_files.sqlite_url(path))
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage, pruner=pruner)
    if resuming:
        check_description(study, description, str(output))
    # TPE's random start draws from the seed: seeded by the trials already run, a resumed study does
    # not draw again the settings its first run drew.
    study.sampler = optuna.samplers.TPESampler(seed=(seed + len(study.trials)) % 2**32)
    return study, storage, resuming


def create_study(url: str, description: dict) -> None:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    study.set_user_attr("description", description)
    storage.engine.dispose()  # closed before the file is renamed into place


def check_description(study, description: dict, where: str, ignore=()) -> None:
    """Refuse to resume or join a study started with other data, settings or space."""
    recorded = study.user_attrs.get("description") or {}
    changed = sorted(
        key
        for key in description
        if key not in ignore and json.loads(json.dumps(description[key])) != recorded.get(key)
    )
    if changed:
        raise ValueError(
            f"{where} holds a study of other {', '.join(changed)}; give the same options to resume it, "
            "or another --output for a new study"
        )


def run_budget(study, objective, trials: int, hours: float | None) -> str:
    """Run trials one at a time until the study has `trials` finished ones or `hours` have passed
    (checked between trials: the last one may overrun); return why it stopped."""
    deadline = None if hours is None else time.monotonic() + hours * 3600
    while True:
        if finished(study) >= trials:
            return f"{trials} trials finished"
        if deadline is not None and time.monotonic() >= deadline:
            return f"{hours:g} hours passed"
        study.optimize(objective, n_trials=1, gc_after_trial=True)


@dataclass(frozen=True)
class SharedStudy:
    """The study a worker joined in --storage, and how a dead worker's trial found by it is handled."""

    study: object  # optuna.Study
    description: dict
    stale_callback: object  # records a dead worker's trial (through `recorders`) and queues it once more
    recorders: list  # filled once this worker's folder is known


def open_shared(args, description: dict) -> SharedStudy:
    """Open --storage and create or join the study --study (one of other options is refused)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    recorders = []  # the worker's interrupted-trial recorder, once its folder is known
    callback = study_storage.retry_once(lambda trial: [write(trial) for write in recorders])
    storage = study_storage.open_storage(args.storage, args.heartbeat, callback)
    study = study_storage.open_shared_study(storage, args.study, description, args.seed, pruner_of(args))
    # The data's path may differ between machines; its options, the settings and the space may not.
    check_description(study, description, f"the study {args.study!r}", ignore=("data",))
    return SharedStudy(study, description, callback, recorders)


def pruner_of(args):
    """The median pruner: from the sixth trial, a trial whose validation accuracy at an epoch (after the
    first) is below the median of the trials before it at that epoch is stopped."""
    import optuna

    if args.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
