"""What a study says, read from its storage alone: one line a trial (its state, score, worker and run
folder), the best trial, and the `python -m training.fit` command that trains the best trial's
settings on all the data (training.tune prints them at the end of a run and for --report)."""

from __future__ import annotations

import shlex
from dataclasses import asdict, fields
from pathlib import Path

from runtime.config import ModelConfig
from training import cli as training_cli
from training import study_files
from training.settings import TrainingSettings

MODEL_FIELDS = {item.name for item in fields(ModelConfig)}  # the searched parameters that are the model's
# The settings a trial's fit command may spell out (the searched, then the fixed ones), in its
# order; the flags are training.fit's (training.cli).
FIT_COMMAND_FIELDS = (
    "learning_rate",
    "adversarial_epsilon",
    "distill_weight",
    "epochs",
    "batch_size",
    "layers",
    "lstm_units",
    "embedding_dim",
    "dropout",
    "vocab_size",
    "sequence_length",
    "word2vec_epochs",
    "patience",
    "validation_split",
    "recurrent_dropout",
    "seed",
)


def format_params(params: dict) -> str:
    return ", ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}" for name, value in params.items()
    )


def finished(study) -> int:
    """Trials run to their end or pruned: each was run once, and the budget counts it."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def completed(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def best_trial_summary(study, description: dict) -> str:
    """The best trial by validation accuracy, and the training.fit command that trains it on all the data:
    from the study alone (its description and the best trial's recorded settings)."""
    best = study.best_trial  # the highest validation accuracy; the first of equals
    lines = [
        f"Best: trial {best.number}, validation accuracy {best.value:.4f} (epoch {best.user_attrs['best_epoch']} "
        f"of {len(best.user_attrs['val_accuracy'])}), of {finished(study)} finished trials",
        f"  {format_params(best.params)}",
        "Train it for real (the test split is evaluated only there):",
        "  " + fit_command(description, *searched_settings(best.params, description)),
    ]
    limit = description["settings"]["limit"]
    if limit:
        lines.append(f"  (the study read {limit:,} texts of each split; the command reads them all)")
    if "folder" in best.user_attrs:
        host = best.user_attrs.get("worker", "").rpartition(":")[0]
        bundle_path = Path(best.user_attrs["folder"]) / study_files.TRIAL_BUNDLE
        lines.append(f"Its bundle (validation figures only), on {host}: {bundle_path}")
    return "\n".join(lines)


def searched_settings(params: dict, description: dict) -> tuple[dict, dict]:
    """The settings and model config a trial's parameters stand for, as the study's description records
    them (the config asked for: a tiny study's vocabulary may come out smaller than its --vocab-size)."""
    model = {name: value for name, value in params.items() if name in MODEL_FIELDS}
    training = {name: value for name, value in params.items() if name not in MODEL_FIELDS}
    # The description's config is ModelConfig.to_dict, which leaves out the seed's options: the defaults fill them.
    config = {**asdict(training_cli.TRAINING_CONFIG), **description["config"], **model}
    return {**description["settings"], **training}, config


def fit_command(description: dict, settings: dict, config: dict) -> str:
    """`python -m training.fit` with the data options and every setting that is not fit's default."""
    words = ["python", "-m", "training.fit"]
    if description["data"]:
        words += ["--data", description["data"]]
    options = description["data_options"]
    for flag, value in (
        ("--format", None if options["format"] == "auto" else options["format"]),
        ("--text-column", options["text_column"]),
        ("--label-column", options["label_column"]),
        ("--split-column", options["split_column"]),
        ("--labels", ",".join(options["labels"]) if options["labels"] else None),
        ("--test-split", description["test_split"]),
    ):
        if value is not None:
            words += [flag, str(value)]
    words += fit_setting_flags(settings, config)
    return shlex.join(words)


def fit_setting_flags(settings: dict, config: dict) -> list[str]:
    defaults, default_config = asdict(TrainingSettings()), asdict(training_cli.TRAINING_CONFIG)
    words = []
    for name in FIT_COMMAND_FIELDS:
        target, values, default = (
            ("config", config, default_config) if name in default_config else ("settings", settings, defaults)
        )
        if values[name] != default[name]:
            value = values[name]
            words += [
                training_cli.option_for(target, name).flag,
                f"{value:.6g}" if isinstance(value, float) else str(value),
            ]
    for name in ("bidirectional", "attention"):
        if config[name]:
            words.append(f"--{name}")
    return words


def report_lines(study) -> list[str]:
    """One line a trial: its state, score, epochs, time, the trial it re-runs, its worker (host:pid)
    and its run folder on that worker's machine (its trial.log and bundle)."""
    trials = study.get_trials(deepcopy=False)
    states = [trial_state(trial) for trial in trials]
    tally = ", ".join(f"{states.count(state)} {state}" for state in dict.fromkeys(sorted(states)))
    lines = [f"Study {study.study_name!r}: {len(trials)} trials ({tally or 'none yet'})"]
    lines.append(
        f"{'trial':>5}  {'state':<11} {'validation':>10}  {'epoch':>6}  {'seconds':>7}  {'retry of':>8}  worker  folder"
    )
    for trial, state in zip(trials, states):
        attrs = trial.user_attrs
        epochs = f"{attrs['best_epoch']}/{len(attrs['val_accuracy'])}" if "best_epoch" in attrs else ""
        value = max(attrs["val_accuracy"]) if attrs.get("val_accuracy") else None
        lines.append(
            f"{trial.number:>5}  {state:<11} {'' if value is None else f'{value:.4f}':>10}  {epochs:>6}  "
            f"{attrs.get('seconds', ''):>7}  {'' if attrs.get('retry_of') is None else attrs['retry_of']:>8}  "
            f"{attrs.get('worker', '')}  {attrs.get('folder', '')}"
        )
    return lines


def trial_state(trial) -> str:
    state = trial.state.name.lower()
    if state == "fail":
        return "failed" if "error" in trial.user_attrs else "interrupted"
    return state
