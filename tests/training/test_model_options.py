"""The model options in Keras: a model that masks its padding answers a padded review exactly as its
device twin answers the review's own tokens, in every layer and direction and through attention;
fit's flags reach the model and the manifest, and what does not combine is refused."""

import json

import numpy as np
import pytest

from runtime.config import ModelConfig
from runtime.text import pad_ids
from training import fit
from training import model as training_model

OPTIONS = [
    {"layers": 2},
    {"bidirectional": True},
    {"attention": True},
    {"layers": 3, "bidirectional": True, "attention": True},
]


def small_config(**options) -> ModelConfig:
    return ModelConfig(vocab_size=40, embedding_dim=8, lstm_units=6, sequence_length=24, **options)


def random_reviews(count: int, config: ModelConfig) -> list[list[int]]:
    rng = np.random.default_rng(0)
    lengths = [2, 5, 11, config.sequence_length - 1, config.sequence_length][:count]
    return [[1, *rng.integers(3, config.vocab_size, length - 1).tolist()] for length in lengths]


@pytest.mark.parametrize("options", OPTIONS)
def test_the_padded_masked_answer_is_the_unpadded_one(options):
    import keras

    keras.utils.set_random_seed(1)
    config = small_config(**options)
    trained = training_model.build_model(config)
    reviews = random_reviews(5, config)
    padded = trained.predict(pad_ids(reviews, config.sequence_length), verbose=0)
    device = training_model.build_inference_model(trained, config, batch_size=1, sequence_length=None)
    for ids, expected in zip(reviews, padded):
        answer = device.predict(np.array([ids], np.int32), verbose=0)[0]
        np.testing.assert_allclose(answer, expected, atol=1e-6)
    assert padded.std(axis=0).max() > 1e-4  # the reviews are answered differently: the check has teeth


def test_the_layers_are_named_as_export_copies_them():
    config = small_config(layers=3, attention=True)
    trained = training_model.build_model(config)
    assert [layer.name for layer in trained.layers] == list(training_model.layer_names(config))
    assert training_model.layer_names(config) == ("embedding", "lstm", "lstm_2", "lstm_3", "attention", "probabilities")


def test_the_seeds_model_is_built_as_before():
    trained = training_model.build_model(ModelConfig())
    assert [layer.name for layer in trained.layers] == list(training_model.LAYERS)
    assert not trained.get_layer("embedding").mask_zero


def test_a_per_step_graph_is_refused_where_the_running_opinion_is_not_defined():
    config = small_config(bidirectional=True)
    with pytest.raises(ValueError, match="no opinion after each token"):
        training_model.build_inference_model(
            training_model.build_model(config), config, sequence_length=None, return_sequences=True
        )


def test_classify_embedded_is_the_models_own_answer():
    """What masked adversarial training runs on the moved review reads the clean one as the model does."""
    import keras

    keras.utils.set_random_seed(2)
    config = small_config(layers=2, bidirectional=True, attention=True)
    trained = training_model.build_model(config)
    ids = pad_ids(random_reviews(5, config), config.sequence_length)
    embedded = trained.get_layer("embedding")(ids)
    answer = training_model.classify_embedded(trained, config, embedded, ids != 0, training=False)
    np.testing.assert_allclose(np.asarray(answer), trained.predict(ids, verbose=0), atol=1e-6)


def test_fit_flags_reach_the_manifest(small_archive, tmp_path):
    output = tmp_path / "bundle"
    argv = ["--data", str(small_archive), "--output", str(output), "--epochs", "1", "--limit", "20", "--quiet"]
    options = ["--layers", "2", "--attention", "--lstm-units", "6", "--embedding-dim", "8", "--word2vec-epochs", "0"]
    assert fit.main(argv + options) == 0
    written = json.loads((output / "manifest.json").read_text())["model_config"]
    assert {key: written[key] for key in ("layers", "attention", "lstm_units", "embedding_dim")} == {
        "layers": 2,
        "attention": True,
        "lstm_units": 6,
        "embedding_dim": 8,
    }
    assert "bidirectional" not in written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--layers", "4"], "layers must be an integer from 1 to 3"),
        (["--lstm-units", "0"], "lstm_units must be an integer"),
        (["--embedding-dim", "x"], "invalid int value"),
    ],
)
def test_option_values_out_of_range_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_language_model_pretraining_is_refused_with_the_options(small_archive, tmp_path, capsys):
    argv = ["--data", str(small_archive), "--output", str(tmp_path / "b"), "--layers", "2", "--pretrain-epochs", "1"]
    assert fit.main([*argv, "--word2vec-epochs", "0", "--quiet"]) == 1
    assert "--pretrain-epochs trains the one-layer model's LSTM" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
