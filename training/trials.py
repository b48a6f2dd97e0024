"""A trial of the tuner, from its parameters to its record: Optuna's objective (suggest, train, record),
the training of one trial through training.fit's own functions on the fit and validation splits (never
the test split), its bundle in its run folder, the epochs reported to the pruner, and TrialRecord, the
line each ended or interrupted trial adds to OUTPUT/trials.jsonl.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from training import fit, study_files, study_storage
from training.search_space import trial_settings
from training.study_report import format_params


@dataclass(frozen=True)
class TrialRecord:
    """A trial as trials.jsonl records it: one compact JSON line each time a trial ends or is found interrupted."""

    trial: int
    state: str  # complete, pruned, failed, interrupted
    params: dict
    settings: dict  # TrainingSettings, as training.fit's manifest records them
    config: dict  # ModelConfig
    validation_accuracy: float | None = None  # the best epoch's: the trial's score
    best_epoch: int | None = None  # 1-based
    val_accuracy: tuple = ()  # each epoch's
    seconds: float | None = None
    retry_of: int | None = None  # the interrupted trial whose settings this one runs again
    error: str | None = None
    ended: str = ""
    folder: str | None = None  # the trial's run folder: its trial.log, and its bundle once trained

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def append_record(output: Path, record: TrialRecord) -> None:
    study_files.append_line(output, record.to_json())


read_records = study_files.read_records


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def train_trial(
    params: dict, prepared: fit.PreparedData, study_settings: dict, verbose: int, trial=None, folder=None
) -> dict:
    """Fit one trial's model on the fit split, validated on the validation split; never the test split.
    With `trial`, each epoch's validation accuracy is reported to it, and its pruner may stop the fit;
    with `folder` (the trial's run folder), the model is written there as a bundle without test figures."""
    import keras

    settings, config = trial_settings(params, study_settings["settings"], study_settings["config"])
    fit.check_settings(settings)
    fit.check_model_options(settings, config)
    started = time.perf_counter()
    reporter = epoch_reporter(trial) if trial is not None else None
    fitted = fit.fit_model(
        prepared.fit,
        settings.epochs,
        settings,
        config,
        study_settings["imdb"],
        verbose,
        prepared.validation,
        callbacks=(reporter,) if reporter else (),
    )
    seconds = time.perf_counter() - started
    if folder is not None:
        write_trial_bundle(
            folder / study_files.TRIAL_BUNDLE, fitted, settings, prepared, study_settings, seconds, trial
        )
    # Each trial's graphs go: a long study does not grow. Not on an exception: the study stops then,
    # and a Ctrl-C in tf.function's tracing leaves a graph entered, over which clear_session raises.
    keras.backend.clear_session()
    val_accuracy = tuple(round(value, 6) for value in fitted.history["val_accuracy"])
    best = max(range(len(val_accuracy)), key=val_accuracy.__getitem__)
    return {
        "settings": asdict(settings),
        "config": asdict(fitted.config),
        "validation_accuracy": val_accuracy[best],
        "best_epoch": best + 1,
        "val_accuracy": val_accuracy,
        "seconds": round(seconds, 1),
        "pruned": bool(reporter and reporter.pruned),
    }


def write_trial_bundle(path: Path, fitted, settings, prepared, study_settings: dict, seconds: float, trial) -> None:
    """The trial's model as a bundle (its best epoch's weights, validation figures, no test ones):
    the best trial's model is kept, to be looked at or exported without training it again."""
    from training.bundle_writer import write_bundle
    from training.records import Selection

    history = fitted.history
    best = max(range(len(history["val_accuracy"])), key=history["val_accuracy"].__getitem__)
    selection = Selection(fitted, history, best, None, seconds, seconds)
    number = "" if trial is None else f"-trial-{trial.number}"
    name = study_settings["name"][:48] + number  # a bundle's name is at most 64 characters
    write_bundle(path, study_settings["data"], name, settings, prepared, selection, None)


def epoch_reporter(trial):
    """A Keras callback reporting each epoch's validation accuracy to the trial; it ends the fit when the
    study's pruner says the trial is hopeless (the epochs so far are kept as the trial's result)."""
    import keras

    class ReportEpochs(keras.callbacks.Callback):
        pruned = False

        def on_epoch_end(self, epoch, logs=None):
            trial.report(float(logs["val_accuracy"]), epoch)
            if trial.should_prune():
                self.pruned = True
                self.model.stop_training = True

    return ReportEpochs()


def objective_for(
    space, prepared, study_settings: dict, output: Path, verbose: int, hooks: dict | None = None, train=None
):
    """Optuna's objective: suggest, train, record; an interruption is recorded before it goes on up.
    hooks (a shared study's): "start" is called with the trial before it trains, "interrupted" after.
    train: what trains a trial, train_trial's signature (training.tune passes its own `train_trial`)."""
    hooks = hooks or {}
    train = train or train_trial

    from optuna import TrialPruned

    def objective(trial) -> float:
        params = {param.name: param.suggest(trial) for param in space}
        settings, config = trial_settings(params, study_settings["settings"], study_settings["config"])
        base = dict(
            trial=trial.number,
            params=params,
            settings=asdict(settings),
            config=asdict(config),
            retry_of=trial.user_attrs.get("retry_of"),
        )
        try:
            if "start" in hooks:
                hooks["start"](trial)
            folder = start_run_folder(trial, output)
            base["folder"] = str(folder)
            with study_files.trial_log(folder):
                print(f"trial {trial.number}: {format_params(params)}", file=sys.stderr, flush=True)
                result = train(params, prepared, study_settings, verbose, trial=trial, folder=folder)
                return finish_trial(trial, result, base, output)  # a pruned trial raises TrialPruned
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            append_record(output, TrialRecord(state="interrupted", ended=now(), **base))
            if "interrupted" in hooks:
                hooks["interrupted"](trial)
            raise
        except (study_storage.OverBudget, TrialPruned):
            raise
        except Exception as error:
            error = f"{type(error).__name__}: {error}"
            trial.set_user_attr("error", error)  # a failed trial without one was interrupted (recover_interrupted)
            append_record(output, TrialRecord(state="failed", error=error, ended=now(), **base))
            raise

    return objective


def start_run_folder(trial, output: Path) -> Path:
    """The trial's run folder in this worker's --output; the study records which worker has it and
    where, so --report tells every trial's folder from the storage alone."""
    folder = study_files.make_trial_folder(output, trial.number).resolve()
    trial.set_user_attr("worker", study_storage.WORKER)  # host:pid; a dead local worker's trial is found by it
    trial.set_user_attr("folder", str(folder))
    return folder


def finish_trial(trial, result: dict, base: dict, output: Path) -> float:
    """Record a trial that ran: its result in the study and in trials.jsonl; a pruned one raises TrialPruned."""
    import optuna

    for key in ("val_accuracy", "best_epoch", "seconds", "settings", "config"):
        trial.set_user_attr(key, result[key])
    base.update(settings=result["settings"], config=result["config"])
    record = TrialRecord(
        state="pruned" if result.get("pruned") else "complete",
        validation_accuracy=result["validation_accuracy"],
        best_epoch=result["best_epoch"],
        val_accuracy=result["val_accuracy"],
        seconds=result["seconds"],
        ended=now(),
        **base,
    )
    append_record(output, record)
    print(
        f"trial {trial.number}: validation accuracy {record.validation_accuracy:.4f} (epoch {record.best_epoch}), "
        f"{record.seconds:.0f} s"
        + (f", pruned after {len(record.val_accuracy)} epochs" if result.get("pruned") else ""),
        file=sys.stderr,
        flush=True,
    )
    if result.get("pruned"):
        raise optuna.TrialPruned
    return record.validation_accuracy


def interrupted_record(trial, study_settings: dict) -> TrialRecord:
    """The record of a trial whose process died: its parameters are in the study, its settings follow."""
    params = dict(trial.params)
    settings, config = trial_settings(params, study_settings["settings"], study_settings["config"])
    return TrialRecord(
        trial=trial.number,
        state="interrupted",
        params=params,
        settings=asdict(settings),
        config=asdict(config),
        retry_of=trial.user_attrs.get("retry_of"),
        error="the process ended during the trial",
        ended=now(),
        folder=trial.user_attrs.get("folder"),  # on the dead worker's machine
    )
