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
