"""The seed's classifier, Embedding -> LSTM -> Dense softmax, its options, and their inference twins for export.

The options (runtime.config.ModelConfig: `layers`, `bidirectional`, `attention`) stack up to three
LSTMs (the lower ones returning every step), wrap each in keras.layers.Bidirectional, and pool the
top LSTM's outputs with additive attention (training.layers) instead of taking its last one. Such
a model masks the padding (the Embedding's mask_zero: PAD_ID is 0), so every layer and direction
skips it and attention gives it no weight: its answer to a padded review is its answer to the
review's own tokens, and its device graphs take only those, with no padding state. The seed's
graph (the defaults) keeps the stored padding states instead (`padding_step_model`).

The trained network carries dropout and recurrent dropout, which make converters emit a
general TensorFlow loop (a Flex op in TFLite, a `Loop` in ONNX). Dropout is the identity at
inference, so `build_inference_model` rebuilds the same function without it, with static
shapes, and copies the trained weights over: the graph converters lower into builtin LSTM
operations (see docs/architecture.md). `padding_step_model` is the same Embedding and LSTM taking
one token and a state, which export runs over the padding to store the states it reaches.

Every layer of this network is built here, for training and export alike. Keras is imported by
each function, not at import, so that a command can quiet TensorFlow's start-up logs
(`training.quiet`) before it loads, and `export` can import this module at its top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.config import ModelConfig

if TYPE_CHECKING:  # annotations only: Keras itself loads inside each function
    import keras

# The trained model's layers by name, as the inference models copy them.
ENCODER_LAYERS = ("embedding", "lstm")
LAYERS = (*ENCODER_LAYERS, "probabilities")
ATTENTION_LAYER = "attention"


def lstm_names(config: ModelConfig) -> tuple[str, ...]:
    """The LSTM layers' names, bottom up: "lstm" (the seed's), then "lstm_2", "lstm_3"."""
    return tuple("lstm" if index == 0 else f"lstm_{index + 1}" for index in range(config.layers))


def layer_names(config: ModelConfig) -> tuple[str, ...]:
    """Every layer of the model by name, in order: the weights the inference models copy."""
    return ("embedding", *lstm_names(config), *((ATTENTION_LAYER,) if config.attention else ()), "probabilities")


def recurrent_layers(
    config: ModelConfig, library, dropout: bool, return_sequences: bool = False, unroll: bool = False
) -> list:
    """The LSTMs (bidirectional if asked), the lower ones returning every step, and the top one
    too with attention (which pools them) or `return_sequences`; with `dropout` the config's."""
    layers = []
    for index, name in enumerate(lstm_names(config)):
        every_step = index < config.layers - 1 or config.attention or return_sequences
        rates = {"dropout": config.dropout, "recurrent_dropout": config.recurrent_dropout} if dropout else {}
        lstm = library.layers.LSTM(config.lstm_units, return_sequences=every_step, unroll=unroll, name=name, **rates)
        layers.append(library.layers.Bidirectional(lstm, name=name) if config.bidirectional else lstm)
    return layers


def attention_layer(config: ModelConfig):
    from training.layers import AttentionPooling

    return AttentionPooling(config.lstm_units, name=ATTENTION_LAYER)


def trainable_encoder(config: ModelConfig, return_sequences: bool = False) -> list:
    """The Embedding and LSTM(s) with dropout (and attention), by the names export and pretraining
    look up: the seed's two layers for the defaults; the options' mask the padding."""
    import keras

    if config.uses_padding_states:  # the seed's, exactly
        return [
            keras.layers.Embedding(config.vocab_size, config.embedding_dim, name="embedding"),
            keras.layers.LSTM(
                config.lstm_units,
                dropout=config.dropout,
                recurrent_dropout=config.recurrent_dropout,
                return_sequences=return_sequences,
                name="lstm",
            ),
        ]
    return [
        keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding"),
        *recurrent_layers(config, keras, dropout=True, return_sequences=return_sequences),
        *([attention_layer(config)] if config.attention else []),
    ]


def classify_embedded(model: keras.Model, config: ModelConfig, embedded, mask, training: bool):
    """`model`'s layers after its embedding, on embedded token ids with their padding mask: what
    adversarial training runs on a moved review (training.adversarial)."""
    outputs = embedded
    for name in layer_names(config)[1:-1]:
        outputs = model.get_layer(name)(outputs, mask=mask, training=training)
    return model.get_layer("probabilities")(outputs)


def load_model(path):
    """A saved model.keras (its attention layer registered first), without its optimizer."""
    import keras

    import training.layers  # noqa: F401  registers AttentionPooling

    return keras.models.load_model(path, compile=False)


def build_model(
    config: ModelConfig,
    learning_rate: float = 1e-3,
    clipnorm: float | None = None,
    ema_momentum: float | None = None,
    weight_decay: float | None = None,
) -> keras.Model:
    """The seed's architecture, compiled for training with Adam and categorical cross-entropy.

    weight_decay is Adam's decoupled decay (AdamW): every step shrinks each weight by
    learning_rate * weight_decay of itself, so embeddings of words a step does not see shrink too.

    ema_momentum keeps an exponential moving average of the weights in the optimizer
    (`keras.callbacks.SwapEMAWeights` swaps it in for validation and for the kept checkpoint).
    """
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(config.sequence_length,), dtype="int32", name="token_ids"),
            *trainable_encoder(config),
            keras.layers.Dense(config.num_classes, activation="softmax", name="probabilities"),
        ],
        name="imdb_lstm",
    )
    compile_for_training(model, learning_rate, clipnorm, ema_momentum, weight_decay)
    return model


def compile_for_training(
    model: keras.Model,
    learning_rate: float = 1e-3,
    clipnorm: float | None = None,
    ema_momentum: float | None = None,
    weight_decay: float | None = None,
) -> None:
    """Adam and categorical cross-entropy (soft targets allowed), reporting accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=learning_rate,
            clipnorm=clipnorm,
            weight_decay=weight_decay,
            use_ema=ema_momentum is not None,
            ema_momentum=ema_momentum or 0.99,
        ),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )


def build_inference_model(
    trained: keras.Model,
    config: ModelConfig,
    batch_size: int | None = 1,
    sequence_length: int | None = -1,
    initial_state: bool = False,
    unroll: bool = False,
    library=None,
    return_sequences: bool = False,
) -> keras.Model:
    """The trained model's function without dropout, with the shapes a converter needs.

    batch_size None leaves the batch dynamic (ONNX handles that; TFLite needs 1).
    sequence_length -1 means the config's; None leaves it dynamic, for the graphs that start
    from a precomputed padding state and run only a review's own tokens.
    initial_state adds the inputs `h0` and `c0` (batch, lstm_units) for that starting state.
    library is the Keras that builds it: Keras 3 by default, `tf_keras` (Keras 2) for the TFLite
    converter's fused LSTM operator, which it only recognises in Keras 2's LSTM.
    return_sequences applies the Dense softmax to every step's LSTM output, so the model answers
    (batch, length, labels): its opinion after each token (the per-step graph that `explain` runs).
    Models of the options (not `config.uses_padding_states`) take no state: see `options_inference_model`.
    """
    import keras

    library = library or keras
    length = config.sequence_length if sequence_length == -1 else sequence_length
    if not config.uses_padding_states:
        if initial_state or unroll or library not in (None, keras):
            raise ValueError("a model of the options starts from no state, with Keras 3's loop (export.common)")
        return options_inference_model(trained, config, batch_size, length, return_sequences)
    token_ids = library.Input(shape=(length,), batch_size=batch_size, dtype="int32", name="token_ids")
    inputs = [token_ids]
    embedded = library.layers.Embedding(config.vocab_size, config.embedding_dim, name="embedding")(token_ids)
    lstm = library.layers.LSTM(config.lstm_units, unroll=unroll, return_sequences=return_sequences, name="lstm")
    if initial_state:
        h0 = library.Input(shape=(config.lstm_units,), batch_size=batch_size, name="h0")
        c0 = library.Input(shape=(config.lstm_units,), batch_size=batch_size, name="c0")
        inputs += [h0, c0]
        state = lstm(embedded, initial_state=[h0, c0])
    else:
        state = lstm(embedded)
    probabilities = library.layers.Dense(config.num_classes, activation="softmax", name="probabilities")(state)
    model = library.Model(inputs, probabilities, name="imdb_lstm_inference")
    copy_weights(trained, model, LAYERS)
    return model


def options_inference_model(
    trained: keras.Model, config: ModelConfig, batch_size: int | None, length: int | None, return_sequences: bool
) -> keras.Model:
    """An option's model without dropout. Padded (a `length`), it masks the padding as the trained
    model does; with length None it is a device graph: a review's own tokens, no padding, no mask,
    no state, so its answer is the padded one's (export.parity proves it on real reviews).
    return_sequences: the opinion after every token, defined only without a backward direction
    or attention (`config.has_running_opinion`)."""
    import keras

    if return_sequences and not config.has_running_opinion:
        raise ValueError("a model with a backward direction or attention has no opinion after each token")
    token_ids = keras.Input(shape=(length,), batch_size=batch_size, dtype="int32", name="token_ids")
    padded = length is not None
    outputs = keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=padded, name="embedding")(
        token_ids
    )
    for layer in recurrent_layers(config, keras, dropout=False, return_sequences=return_sequences):
        outputs = layer(outputs)
    if config.attention:
        outputs = attention_layer(config)(outputs)
    probabilities = keras.layers.Dense(config.num_classes, activation="softmax", name="probabilities")(outputs)
    model = keras.Model(token_ids, probabilities, name="imdb_lstm_inference")
    copy_weights(trained, model, layer_names(config))
    return model


def padding_step_model(trained: keras.Model, config: ModelConfig) -> keras.Model:
    """The trained Embedding and LSTM (no dropout) taking one token (1, 1) and a state `h0`, `c0`
    (1, lstm_units), answering the state after it, [h, c]: export runs it over the padding."""
    import keras

    token = keras.Input(shape=(1,), batch_size=1, dtype="int32")
    h0 = keras.Input(shape=(config.lstm_units,), batch_size=1)
    c0 = keras.Input(shape=(config.lstm_units,), batch_size=1)
    embedded = keras.layers.Embedding(config.vocab_size, config.embedding_dim, name="embedding")(token)
    _, h, c = keras.layers.LSTM(config.lstm_units, return_state=True, name="lstm")(embedded, initial_state=[h0, c0])
    step = keras.Model([token, h0, c0], [h, c])
    copy_weights(trained, step, ENCODER_LAYERS)
    return step


def copy_weights(trained: keras.Model, model: keras.Model, names: tuple[str, ...]) -> None:
    """The trained model's weights of the named layers into `model`'s layers of the same names."""
    for name in names:
        model.get_layer(name).set_weights(trained.get_layer(name).get_weights())
