"""Search the model options and training settings by validation accuracy: `python -m training.tune`.

    python -m training.tune --data ../shared/data/aclImdb_labeled.tar.gz --output runs/tune-imdb --trials 30
    python -m training.tune --data ... --output runs/tune-imdb --hours 8     # the same folder again: it resumes
    python -m training.tune --data ... --output runs/tune-quick --limit 2000 --layers 1,2 --lstm-units 32,64

Each trial trains through training.fit's own functions (read_data once, then fit_model with the
validation split: word2vec, the n-gram teacher, adversarial training and the kept best epoch as in a
real run) and is scored by its best validation accuracy. The test split is dropped as soon as the
data is read: no trial is evaluated on it, and no record holds a test figure.

Optuna (docs/tuning.md says why not KerasTuner) keeps the study in OUTPUT/study.db (SQLite); every
trial, finished, failed or interrupted, is also a line of OUTPUT/trials.jsonl (TrialRecord) and has
a run folder, OUTPUT/trial-NNNN: its trial.log, and its bundle (no test figures) once trained. Run
the same command again to go on: finished trials are kept, and a trial that was interrupted (Ctrl-C,
SIGTERM, a kill, a power cut) is marked so and run again once with the same settings. The budget
(--trials: finished trials in the study; --hours: this run's time) is checked between trials, so the
last trial may overrun --hours by up to one trial. One trial trains at a time. At the end the best
trial's settings are printed with the `python -m training.fit` command that trains it for real.
Each epoch's validation accuracy is reported to Optuna, whose median pruner stops hopeless trials.

With --storage URL (PostgreSQL, SQLite, Optuna's journal file) and --study NAME, any number of these
commands, on this machine (--workers N) or others, share one study (training/study_storage.py): each
trial runs once, a killed worker's trial is run again once, the budget is the study's, and --report
lists every worker's trials from the storage alone. The study folder's files: training/study_files.py.

Exit status: 0 the budget met (or the report printed), 1 one `error:` line (the data, the folder or
the storage; never a password), 2 a usage error, 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from runtime import cli
from runtime.config import ModelConfig
from training import cli as training_cli
from training import data, fit, study_files, study_report, study_storage
from training.quiet import quiet
from training.settings import TrainingSettings
from training.study_report import best_trial_summary, completed, finished, format_params

STUDY_NAME = "tune"
STUDY_FILE, RECORDS_FILE = study_files.STUDY_FILE, study_files.RECORDS_FILE
DEFAULT_TRIALS = 20
SEED_LIMIT = 2**32 - 2  # numpy's seeds end at 2**32 - 1, and the test sample draws from seed + 1


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a list of choices, or a range (log-uniform for `log`)."""

    name: str  # the fit flag's destination: layers, learning_rate, ...
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False

    def suggest(self, trial):
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return ",".join(str(choice).lower() for choice in self.choices)
        return f"{self.low:g}:{self.high:g}" + (" (log)" if self.log else "")


# The default search space: the model options and the training settings that moved validation
# accuracy on IMDB (docs/training.md); the reasons for each range are in docs/tuning.md.
# flag, destination, default, kind (int, bool, float choices, or a float range; "log" for log-uniform)
SPACE = (
    ("--layers", "layers", "1,2,3", "int"),
    ("--bidirectional", "bidirectional", "false,true", "bool"),
    ("--attention", "attention", "false,true", "bool"),
    ("--lstm-units", "lstm_units", "64,100,128", "int"),
    ("--embedding-dim", "embedding_dim", "64,128", "int"),
    ("--learning-rate", "learning_rate", "3e-4:3e-3", "log"),
    ("--dropout", "dropout", "0.2:0.6", "float"),
    ("--adversarial", "adversarial_epsilon", "0,0.25,0.5,1", "float"),
    ("--distill", "distill_weight", "0,0.25,0.5,0.7", "float"),
    ("--epochs", "epochs", "4,8", "int"),
    ("--batch-size", "batch_size", "32,64", "int"),
)
MODEL_PARAMS = {"layers", "bidirectional", "attention", "lstm_units", "embedding_dim", "dropout"}


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


def parse_param(name: str, text: str, kind: str) -> Param:
    """A flag's value: A,B,... (choices) or LOW:HIGH (a range, floats only); one value fixes it."""
    convert = {"int": int, "float": float, "log": float, "bool": parse_bool}[kind]
    try:
        if ":" in text:
            if kind not in ("float", "log"):
                raise ValueError("a range is for a real-valued setting; give choices A,B,...")
            low, high = (float(part) for part in text.split(":", 1))
            if not 0 <= low < high or (kind == "log" and low <= 0):
                raise ValueError(f"expected 0 <= LOW < HIGH, got {text}")
            return Param(name, low=low, high=high, log=kind == "log")
        choices = tuple(dict.fromkeys(convert(part.strip()) for part in text.split(",")))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{name}: {error}") from None
    return Param(name, choices=choices)


def parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def space_type(name: str, kind: str):
    def parse(text: str) -> Param:
        return parse_param(name, text, kind)

    parse.__name__ = kind
    return parse


def check_space(space: tuple[Param, ...], base_config: ModelConfig, base: TrainingSettings) -> None:
    """Refuse a space any of whose corners training.fit would refuse, before anything trains."""
    for param in space:
        for value in param.choices or (param.low, param.high):
            if param.name in MODEL_PARAMS:
                replace(base_config, **{param.name: value})  # ModelConfig checks its ranges
            elif param.name in ("epochs", "batch_size") and value < 1:
                raise ValueError(f"{param.name} must be 1 or more, got {value}")
            elif param.name in ("distill_weight",) and not 0 <= value < 1:
                raise ValueError(f"distill_weight must be in [0, 1), got {value}")
            elif param.name == "learning_rate" and not value > 0:
                raise ValueError(f"learning_rate must be positive, got {value}")
    if base.pretrain_epochs:
        raise ValueError("the tuner searches the model options, which language-model pretraining refuses")


def trial_settings(
    params: dict, base: TrainingSettings, base_config: ModelConfig
) -> tuple[TrainingSettings, ModelConfig]:
    """The settings and model a trial's parameters stand for."""
    model = {name: value for name, value in params.items() if name in MODEL_PARAMS}
    training = {name: value for name, value in params.items() if name not in MODEL_PARAMS}
    return replace(base, **training), replace(base_config, **model)


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


def objective_for(space, prepared, study_settings: dict, output: Path, verbose: int, hooks: dict | None = None):
    """Optuna's objective: suggest, train, record; an interruption is recorded before it goes on up.
    hooks (a shared study's): "start" is called with the trial before it trains, "interrupted" after."""
    hooks = hooks or {}

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
                result = train_trial(params, prepared, study_settings, verbose, trial=trial, folder=folder)
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
    path = output / STUDY_FILE
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


def interrupt_on_sigterm() -> None:
    """A SIGTERM (systemd, a scheduler) ends the trial as Ctrl-C does, so it is recorded as interrupted."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def tune(args: argparse.Namespace) -> int:
    """Open or resume the study (args.output's, or --storage's), run it to its budget, print the best trial."""
    settings, config = settings_from(args), config_from(args)
    space = tuple(getattr(args, destination) for _, destination, _, _ in SPACE)
    check_space(space, config, settings)
    check_arguments(args)
    study_files.check_output_folder(args.output, shared=bool(args.storage))
    description = study_description(args, space, settings, config)
    verbose = 0 if args.quiet else 2  # one line an epoch
    # The storage before the data (a wrong URL is one line at once), the data before a new study's
    # folder: a mistyped --data leaves no study behind that would refuse the corrected command.
    shared = open_shared(args, description) if args.storage else None
    workers = study_storage.start_workers(args.argv, args.workers) if args.workers > 1 else []
    try:
        prepared = fit.read_data(args.data, settings, training_cli.data_options_from(args), args.test_split, verbose)
        prepared = replace(prepared, test=None)  # no trial is ever evaluated on the test split
        dataset = prepared.dataset
        study_settings = {
            "settings": settings,
            "config": replace(config, labels=dataset.labels),
            "imdb": dataset.format == "imdb",
            "data": args.data,  # the trials' bundles: its folder is never written into
            "name": fit.default_name(args.data, args.format),  # a trial's bundle is NAME-trial-N
        }
        study_files.make_folder(args.output)
        if shared:
            code = tune_shared(args, shared, space, prepared, study_settings, verbose)
        else:
            code = tune_folder(args, description, space, prepared, study_settings, verbose)
    except BaseException:
        study_storage.stop_workers(workers)
        raise
    return max([code, *study_storage.wait_workers(workers)])


def tune_folder(args, description: dict, space, prepared, study_settings: dict, verbose: int) -> int:
    """The study in args.output/study.db, one tuner at a time (the folder's lock)."""
    with study_files.study_lock(args.output):
        study, storage, resuming = open_study(args.output, description, args.seed, pruner_of(args))
        study_files.write_description(args.output, description)
        queued = recover_interrupted(study, storage, args.output, study_settings)
        print(
            f"{'Resuming' if resuming else 'Starting'} the study in {args.output}: {finished(study)} trials finished"
            + (f"; trials {', '.join(map(str, queued))} were interrupted and run again first" if queued else "")
            + f"; validating on {len(prepared.validation):,} of {len(prepared.train):,} training texts",
            file=sys.stderr,
            flush=True,
        )
        objective = objective_for(space, prepared, study_settings, args.output, verbose)
        reason = run_budget(study, objective, budget_of(args), args.hours)
        print(f"Stopped: {reason}; every trial is in {args.output / RECORDS_FILE}")
        if completed(study):
            print(best_trial_summary(study, description))
    return 0


@dataclass(frozen=True)
class SharedStudy:
    """The study a worker joined in --storage, and how a dead worker's trial found by it is handled."""

    study: object  # optuna.Study
    description: dict
    stale_callback: object  # records a dead worker's trial (through `recorders`) and queues it once more
    recorders: list  # filled once this worker's folder is known


def tune_shared(args, shared: SharedStudy, space, prepared, study_settings: dict, verbose: int) -> int:
    """A worker of the study in --storage: trials until the study's budget is met."""
    study, description = shared.study, shared.description
    study_files.write_description(args.output, description)
    shared.recorders.append(lambda trial: append_record(args.output, interrupted_record(trial, study_settings)))
    print(
        f"Worker {study_storage.WORKER} of the study {args.study!r} in {study_storage.redact(args.storage, args.storage)}: "
        f"{finished(study)} trials finished; validating on {len(prepared.validation):,} of "
        f"{len(prepared.train):,} training texts",
        file=sys.stderr,
        flush=True,
    )
    trials = budget_of(args)
    hooks = {
        "start": lambda trial: start_shared_trial(study, trial, trials),
        "interrupted": lambda trial: study_storage.queue_retry(study, trial),  # for any worker
    }
    objective = objective_for(space, prepared, study_settings, args.output, verbose, hooks)
    poll = min(args.heartbeat, 5)
    reason = study_storage.run_shared_budget(study, objective, trials, args.hours, poll, shared.stale_callback)
    print(f"Stopped: {reason}; this worker's trials are in {args.output / RECORDS_FILE}")
    if completed(study):
        print(best_trial_summary(study, description))
    return 0


def start_shared_trial(study, trial, trials: float) -> None:
    study_storage.check_budget(study, trial, trials)


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


def budget_of(args) -> float:
    if args.trials:
        return args.trials
    return DEFAULT_TRIALS if args.hours is None else math.inf


def pruner_of(args):
    """The median pruner: from the sixth trial, a trial whose validation accuracy at an epoch (after the
    first) is below the median of the trials before it at that epoch is stopped."""
    import optuna

    if args.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def check_arguments(args: argparse.Namespace) -> None:
    """What argparse's types let through but a trial would refuse: checked before anything is written."""
    if not 0 <= args.seed <= SEED_LIMIT:
        raise ValueError(f"--seed must be from 0 to {SEED_LIMIT}, got {args.seed}")
    if args.storage:
        study_storage.check_url(args.storage)
    elif args.workers > 1:
        raise ValueError("--workers N shares a study: give --storage (journal:PATH on this machine)")
    elif args.study != STUDY_NAME:
        raise ValueError("--study names a study in --storage; without it the folder's study.db holds one study")


def report(args: argparse.Namespace) -> int:
    """--report: every trial of the study and the best one's command, from the storage alone (no data)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.storage:
        study_storage.check_url(args.storage)
        storage, name = study_storage.open_storage(args.storage, args.heartbeat, None), args.study
    else:
        path = args.output / STUDY_FILE
        if not os.path.lexists(path):
            raise ValueError(f"{args.output} holds no study ({STUDY_FILE})")
        study_files.check_study_db(path, STUDY_NAME)
        storage, name = optuna.storages.RDBStorage(study_files.sqlite_url(path)), STUDY_NAME
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ValueError(f"the storage holds no study {name!r}") from None
    print("\n".join(study_report.report_lines(study)))
    if completed(study):
        print(best_trial_summary(study, study.user_attrs["description"]))
    return 0


def settings_from(args: argparse.Namespace) -> TrainingSettings:
    """The settings no trial changes; each trial replaces the searched ones."""
    return replace(training_cli.settings_from(args, training_cli.TUNE_FIXED_OPTIONS), seed=args.seed, limit=args.limit)


def config_from(args: argparse.Namespace) -> ModelConfig:
    return training_cli.config_from(args, training_cli.TUNE_FIXED_OPTIONS)


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, help="the study's folder (runs/tune-NAME); again to resume")
    parser.add_argument(
        "--trials",
        type=training_cli.positive_int,
        help=f"stop when the study has N finished trials (default {DEFAULT_TRIALS})",
    )
    parser.add_argument(
        "--hours", type=training_cli.positive_float, help="stop this run after H hours (checked between trials)"
    )
    parser.add_argument(
        "--limit", type=training_cli.positive_int, help="use only N texts of each split (quick studies)"
    )
    parser.add_argument(
        "--seed", type=int, default=TrainingSettings.seed, help="seed of the splits, weights and sampler"
    )
    parser.add_argument("--quiet", action="store_true", help="no Keras epoch lines")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")


def add_space_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "the search space", "A,B,... are choices and LOW:HIGH a range; one value fixes the setting"
    )
    for flag, destination, default, kind in SPACE:
        group.add_argument(
            flag,
            dest=destination,
            type=space_type(destination, kind),
            default=default,  # a string: argparse parses it with the type
            metavar="A,B" if kind in ("int", "bool") else "LOW:HIGH|A,B",
            help="choices"
            if kind in ("int", "bool")
            else "a range (log-uniform)"
            if kind == "log"
            else "a range or choices",
        )


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """A study shared by many tuners (docs/tuning.md, "A study on many machines"), pruning, the report."""
    group = parser.add_argument_group("a study shared by many workers")
    group.add_argument(
        "--storage",
        metavar="URL",
        help="the study's storage: postgresql+psycopg://USER@HOST/DATABASE, sqlite:///PATH or journal:PATH "
        "(default: OUTPUT/study.db, one tuner at a time)",
    )
    group.add_argument("--study", default=STUDY_NAME, metavar="NAME", help="the study's name in --storage")
    group.add_argument(
        "--workers", type=training_cli.positive_int, default=1, help="trials at once on this machine (needs --storage)"
    )
    group.add_argument(
        "--heartbeat",
        type=training_cli.positive_float,
        default=60,
        metavar="SECONDS",
        help="a worker's beat; a trial silent for 3 beats was killed and is run again",
    )
    group.add_argument(
        "--pruner", choices=("median", "none"), default="median", help="stop hopeless trials (median of the others)"
    )
    group.add_argument(
        "--report",
        action="store_true",
        help="list the study's trials (each one's worker and run folder) and the best one's command; train nothing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = cli.parser("training.tune", __doc__.split("\n")[0])
    training_cli.add_options(parser, training_cli.DATA_OPTIONS)
    add_study_arguments(parser)
    add_shared_arguments(parser)
    training_cli.add_options(parser, training_cli.TUNE_FIXED_OPTIONS)  # training.fit's settings every trial shares
    add_space_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is None and not (args.report and args.storage):
        parser.error("--output is required (the study's folder), but for --report with --storage")
    args.argv = argv  # --workers starts this command again
    worker = bool(os.environ.get(study_storage.WORKER_VARIABLE))  # started by --workers: the first speaks
    args.workers = 1 if worker else args.workers
    quiet(args.verbose)
    interrupt_on_sigterm()
    try:
        return report(args) if args.report else tune(args)
    except KeyboardInterrupt:
        if not worker:
            where = f"the study {args.study!r}" if args.storage else f"the study in {args.output}"
            print(f"\ninterrupted: run the same command to resume {where}", file=sys.stderr)
        return 130
    except (data.DataError, OSError, ValueError, study_storage.StorageError) as error:
        print(f"error: {study_storage.redact(str(error), args.storage)}", file=sys.stderr)
        return 1
    except Exception as error:
        if not study_storage.is_storage_error(error):
            raise
        print(f"error: the study's storage failed: {study_storage.one_line(error, args.storage)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
