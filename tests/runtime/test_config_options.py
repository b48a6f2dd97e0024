"""ModelConfig's model options: validated, written to the manifest only when they differ from the
seed's (so the seed's manifests, the shipped one first, keep their bytes), read back when present."""

import json

import pytest

from runtime import bundle
from runtime.config import ModelConfig
from tests.conftest import SHIPPED_BUNDLE


def test_the_shipped_manifests_model_config_is_unchanged_by_to_dict():
    written = json.loads((SHIPPED_BUNDLE / bundle.MANIFEST_NAME).read_text())["model_config"]
    config = ModelConfig.from_dict(written)
    assert json.dumps(config.to_dict()) == json.dumps(written)
    assert config.uses_padding_states and config.has_running_opinion
    assert bundle.Manifest.read(SHIPPED_BUNDLE).model_config == config


def test_the_seeds_defaults_are_not_written():
    assert not {"layers", "bidirectional", "attention"} & set(ModelConfig().to_dict())


@pytest.mark.parametrize(
    "options",
    [
        {"layers": 2},
        {"bidirectional": True},
        {"attention": True},
        {"layers": 3, "bidirectional": True, "attention": True},
    ],
)
def test_an_option_is_written_and_read_back(options):
    config = ModelConfig(**options)
    assert {key: config.to_dict()[key] for key in options} == options
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert not config.uses_padding_states


@pytest.mark.parametrize(
    "options, running_opinion",
    [({"layers": 3}, True), ({"bidirectional": True}, False), ({"attention": True}, False)],
)
def test_only_forward_lstms_without_attention_have_a_running_opinion(options, running_opinion):
    assert ModelConfig(**options).has_running_opinion is running_opinion


@pytest.mark.parametrize(
    "options, message",
    [
        ({"layers": 0}, "layers must be an integer from 1 to 3"),
        ({"layers": 4}, "layers must be an integer from 1 to 3"),
        ({"layers": True}, "layers must be an integer"),
        ({"bidirectional": 1}, "bidirectional must be true or false"),
        ({"attention": "yes"}, "attention must be true or false"),
    ],
)
def test_options_out_of_range_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**options)
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict({**ModelConfig().to_dict(), **options})


def test_the_weights_a_config_makes_are_bounded():
    """`fit --lstm-units 65536` passed the range check, then TensorFlow ran out of memory (issue 33, 10)."""
    assert ModelConfig().parameters == 1_371_802  # training.model's count_params() for the seed's model
    with pytest.raises(
        ValueError, match=r"make 17,215,096,834 weights \(68.9 GB\); a model may have at most 100,000,000"
    ):
        ModelConfig(lstm_units=65536)
    ModelConfig(embedding_dim=5000)
    ModelConfig(lstm_units=2000)
    with pytest.raises(ValueError, match="a model may have at most"):
        ModelConfig(embedding_dim=5000, lstm_units=2000)  # each fits alone, not together
