"""The tuner's search space: its dimensions (Param), the default space (SPACE) and its flags, the
parsing and checking of a space, and the settings and model a trial's parameters stand for.

A flag's value is A,B,... (choices) or LOW:HIGH (a range, real-valued settings only); one value fixes
the setting. `check_space` refuses, before anything trains, a space any of whose corners training.fit
would refuse. training.tune builds its parser and its study from these; training.trials turns a trial's
parameters into settings with `trial_settings`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from runtime.config import ModelConfig
from training.settings import TrainingSettings


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
