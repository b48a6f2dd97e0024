"""training.cli: the one table of training options builds fit's parser, tune's shared flags and the
runs table's command; every setting has a row, a help text and the settings' own default."""

import argparse
import shlex
from dataclasses import fields

import pytest

from benchmarks import runs
from training import cli
from training.settings import TrainingSettings


def parsed(options, argv=()):
    parser = argparse.ArgumentParser()
    cli.add_options(parser, options)
    return parser.parse_args(list(argv))


def test_every_setting_has_one_row_and_every_row_a_help():
    rows = [(option.target, option.field) for option in cli.FIT_OPTIONS]
    assert len(rows) == len(set(rows)), "a field filled by two flags"
    assert {field.name for field in fields(TrainingSettings)} <= {
        field for target, field in rows if target == "settings"
    }
    assert all(option.help.strip() for option in cli.FIT_OPTIONS)


def test_the_defaults_are_the_records_defaults():
    args = parsed(cli.FIT_OPTIONS)
    assert cli.settings_from(args) == TrainingSettings()
    assert cli.config_from(args) == cli.TRAINING_CONFIG


def test_tune_shares_its_fixed_flags_and_keeps_the_other_defaults():
    args = parsed(cli.TUNE_FIXED_OPTIONS, ["--patience", "3", "--vocab-size", "5000"])
    assert cli.settings_from(args, cli.TUNE_FIXED_OPTIONS) == TrainingSettings(patience=3)
    assert cli.config_from(args, cli.TUNE_FIXED_OPTIONS).vocab_size == 5000


def test_a_setting_without_a_row_fails(monkeypatch):
    monkeypatch.setattr(cli, "FIT_OPTIONS", tuple(o for o in cli.FIT_OPTIONS if o.field != "extra_ratio"))
    with pytest.raises(RuntimeError, match="extra_ratio"):
        cli.check_table()


def test_the_runs_command_spells_out_the_extra_supervision():
    settings = TrainingSettings(phrases="sst/train.txt", pairs="cad/train.tsv", extra_ratio=0.5)
    words = shlex.split(runs.command(settings, cli.TRAINING_CONFIG))
    args = parsed(cli.FIT_OPTIONS, words[3:])
    assert cli.settings_from(args) == settings


def test_bad_values_are_refused():
    with pytest.raises(SystemExit):
        parsed(cli.FIT_OPTIONS, ["--epochs", "0"])
    with pytest.raises(SystemExit):
        parsed(cli.FIT_OPTIONS, ["--name", "no spaces"])
