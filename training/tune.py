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

This module is the command line and runs the study to its budget. Its parts: the search space and its
flags (training/search_space.py), a trial from its parameters to its record (training/trials.py), the
study opened, resumed or joined (training/study.py); their public names can be imported from here too.

Exit status: 0 the budget met (or the report printed), 1 one `error:` line (the data, the folder or
the storage; never a password), 2 a usage error, 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from dataclasses import asdict, replace  # noqa: F401 (asdict: tests read it from here)
from pathlib import Path

from runtime import cli
from runtime.config import ModelConfig
from training import cli as training_cli
from training import data, fit, study_files, study_report, study_storage
from training.quiet import quiet

# The tuner's parts (callers and tests import their names from here): the search space, a trial from its
# parameters to its record, and the study it runs in. The objective trains with this module's `train_trial`
# (passed as train=), so whoever replaces tune.train_trial (the tests' fake trainings) replaces what it runs.
from training.search_space import (  # noqa: F401
    MODEL_PARAMS,
    SPACE,
    Param,
    add_space_arguments,
    check_space,
    parse_bool,
    parse_param,
    space_type,
    trial_settings,
)
from training.settings import TrainingSettings
from training.study import (  # noqa: F401
    STUDY_NAME,
    SharedStudy,
    check_description,
    create_study,
    open_shared,
    open_study,
    pruner_of,
    recover_interrupted,
    run_budget,
    study_description,
)
from training.study_report import best_trial_summary, completed, finished
from training.trials import (  # noqa: F401
    TrialRecord,
    append_record,
    epoch_reporter,
    finish_trial,
    interrupted_record,
    now,
    objective_for,
    read_records,
    start_run_folder,
    train_trial,
    write_trial_bundle,
)

STUDY_FILE, RECORDS_FILE = study_files.STUDY_FILE, study_files.RECORDS_FILE
DEFAULT_TRIALS = 20
SEED_LIMIT = 2**32 - 2  # numpy's seeds end at 2**32 - 1, and the test sample draws from seed + 1


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
        objective = objective_for(space, prepared, study_settings, args.output, verbose, train=train_trial)
        reason = run_budget(study, objective, budget_of(args), args.hours)
        print(f"Stopped: {reason}; every trial is in {args.output / RECORDS_FILE}")
        if completed(study):
            print(best_trial_summary(study, description))
    return 0


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
    objective = objective_for(space, prepared, study_settings, args.output, verbose, hooks, train=train_trial)
    poll = min(args.heartbeat, 5)
    reason = study_storage.run_shared_budget(study, objective, trials, args.hours, poll, shared.stale_callback)
    print(f"Stopped: {reason}; this worker's trials are in {args.output / RECORDS_FILE}")
    if completed(study):
        print(best_trial_summary(study, description))
    return 0


def start_shared_trial(study, trial, trials: float) -> None:
    study_storage.check_budget(study, trial, trials)


def budget_of(args) -> float:
    if args.trials:
        return args.trials
    return DEFAULT_TRIALS if args.hours is None else math.inf


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
