"""The runs table's command repeats its run: parsed by training.fit's own parser, it gives back the
run's settings and model config, options and turned-off defaults included."""

import shlex
from dataclasses import replace

import pytest

pytest.importorskip("tensorflow", reason="training.fit is the training side")

from scripts import training_runs  # noqa: E402
from training import fit  # noqa: E402
from training.settings import TrainingSettings  # noqa: E402

RUNS = {
    "defaults": (TrainingSettings(), fit.TRAINING_CONFIG),
    "defaults turned off": (
        TrainingSettings(word2vec_epochs=0, adversarial_epsilon=0.0, distill_weight=0.0, epochs=3, limit=60),
        fit.TRAINING_CONFIG,
    ),
    "older settings": (
        TrainingSettings(lr_decay=0.5, ema_momentum=0.99, weight_decay=0.1, refit=True, seed=2),
        replace(fit.TRAINING_CONFIG, dropout=0.2, recurrent_dropout=0.5),
    ),
    "model options": (
        TrainingSettings(),
        replace(fit.TRAINING_CONFIG, layers=2, bidirectional=True, attention=True, lstm_units=64, embedding_dim=32),
    ),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_the_command_repeats_the_run(name):
    settings, config = RUNS[name]
    words = shlex.split(training_runs.command(settings, config))
    assert words[:3] == ["python", "-m", "training.fit"]
    args = fit.build_parser().parse_args(words[3:])
    assert fit.settings_from(args) == settings
    assert fit.config_from(args) == config


def ablation_row(run: str, settings: dict, validation: list[float], phrases: list[float], **extra) -> dict:
    return {
        "run": run,
        "trained": f"2026-12-05 0{len(run) % 10}:00",
        "settings": settings,
        "validation_accuracy": validation,
        "val_phrases_accuracy": phrases,
        "val_pairs_accuracy": [0.9] * len(validation),
        "best_epoch": len(validation),
        "test_accuracy": 0.9,
        "challenge_accuracy": None,
        "training_minutes": 20.0,
        "command": "python -m training.fit --seed 1337",
        **extra,
    }


def test_the_ablation_table_compares_each_row_with_the_base_on_validation():
    base = ablation_row(
        "ablation-both", {"distill_weight": 0.5, "phrases": "p"}, [0.8, 0.85], [0.8, 0.8], ablation=True
    )
    no_teacher = ablation_row("ablation-no-teacher", {"phrases": "p"}, [0.9], [0.9], ablation=True)
    ratio = ablation_row("ablation-ratio", {"distill_weight": 0.5, "phrases": "p", "extra_ratio": 8}, [0.7], [0.7])
    assert training_runs.ablation_table([no_teacher]) is None  # no base, no table
    lines = training_runs.ablation_table([no_teacher, ratio, base]).splitlines()
    assert len(lines) == 4  # the header, its rule and the two ablation rows; a row without --ablation is not one
    assert lines[2].startswith("| ablation-both | the base recipe | 2 of 2 | 85.00 % | 80.00 % | 90.00 % | 85.00 % |")
    assert lines[3].startswith("| ablation-no-teacher | without distill_weight | 1 of 1 |")
    assert "**90.00 %**" in lines[3] and "**" not in lines[2]  # the best mean of the three validations
    assert training_runs.differences(ratio, base) == "extra_ratio 8"
    assert training_runs.differences({**base, "command": "python -m training.fit --seed 2"}, base) == "seed 2"
    # A model field back at the seed's value is left out of the settings: named with that value.
    dropout = {**base, "settings": {**base["settings"], "dropout": 0.5}}
    assert training_runs.differences(base, dropout) == "dropout 0.2 (the seed's)"
