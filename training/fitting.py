"""Fit one model: the vocabulary, the targets (with an n-gram teacher's), the embedding's start,
the callbacks that keep the best epoch, adversarial training and the mixed-in extra supervision.
training.fit runs it for validation and refit, training.tune for each trial."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from runtime.config import ModelConfig
from runtime.text import FIRST_WORD_ID, Tokenizer, pad_ids
from training import data, splits, supervision
from training.mixing import Mixture
from training.records import Fitted
from training.settings import TrainingSettings


def stage(message: str, verbose: int) -> None:
    """Say a stage on stderr unless verbose is 0 (long silent stages look like a hang)."""
    if verbose:
        print(message, file=sys.stderr, flush=True)


def epochs_text(count: int) -> str:
    """ "1 epoch", "8 epochs": the progress lines' count."""
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def text_noun(imdb: bool) -> str:
    """What the progress lines call the examples."""
    return "reviews" if imdb else "texts"


def one_hot(split: data.Split, config: ModelConfig):
    import keras

    return keras.utils.to_categorical(split.labels, config.num_classes)


def build_vocabulary_and_model(split: data.Split, settings: TrainingSettings, config: ModelConfig, texts: str, verbose):
    """The vocabulary of `split` and a new model for it; the model's vocab_size is the ids found."""
    from training.model import build_model

    stage(f"Building the vocabulary from {len(split):,} {texts}", verbose)
    tokenizer = Tokenizer.build(split.texts, config.vocab_size, config.sequence_length)
    model_config = config
    if tokenizer.vocab_size < config.vocab_size:  # an id for each word found, never an unused row
        print(
            f"note: only {tokenizer.vocab_size - FIRST_WORD_ID:,} distinct words in the training {texts}; "
            f"the vocabulary has {tokenizer.vocab_size:,} ids, not {config.vocab_size:,}",
            file=sys.stderr,
        )
        model_config = replace(config, vocab_size=tokenizer.vocab_size)
    model = build_model(
        model_config, settings.learning_rate, settings.clipnorm, settings.ema_momentum, settings.weight_decay
    )
    return tokenizer, model, model_config


def distilled_targets(split: data.Split, settings: TrainingSettings, config: ModelConfig, imdb: bool, verbose):
    """The one-hot labels, mixed with an n-gram teacher's soft targets if --distill; and the teacher's record."""
    targets, teacher = one_hot(split, config), None
    if settings.distill_weight:
        from training.teacher import out_of_fold_probabilities

        texts = text_noun(imdb)
        stage(f"Training the n-gram teacher on the fit {texts}", verbose)
        # IMDB's blocks of consecutive ids are mostly one film each; other data's ids are line
        # or file numbers, which say nothing of what texts share, so each text is its own group.
        groups = split.ids // splits.VALIDATION_BLOCK_IDS if imdb else split.ids
        soft, teacher = out_of_fold_probabilities(split.texts, split.labels, groups, config.num_classes)
        print(
            f"Teacher: out-of-fold accuracy {teacher['out_of_fold_accuracy']:.4f} on the fit {texts} "
            f"({teacher['seconds']:.0f} s)",
            file=sys.stderr,
        )
        targets = (1 - settings.distill_weight) * targets + settings.distill_weight * soft
    return targets, teacher


def start_embedding(model, token_ids, model_config: ModelConfig, settings: TrainingSettings, texts: str, verbose):
    """Start the embedding from word2vec, or pretrain as a language model, if asked; return the record."""
    from training.pretrain import pretrain
    from training.word_vectors import word2vec_embedding

    pretraining = None
    if settings.word2vec_epochs:
        stage(f"word2vec: {epochs_text(settings.word2vec_epochs)} on the fit {texts}", verbose)
        embedding, pretraining = word2vec_embedding(token_ids, model_config, settings.word2vec_epochs, settings.seed)
        model.get_layer("embedding").set_weights([embedding])
    if settings.pretrain_epochs:
        stage(f"Pretraining as a language model: {epochs_text(settings.pretrain_epochs)}", verbose)
        pretraining = pretrain(
            model,
            token_ids,
            model_config,
            settings.pretrain_epochs,
            settings.batch_size,
            settings.learning_rate,
            settings.clipnorm,
            verbose,
        )
    return pretraining


def training_callbacks(settings: TrainingSettings, validating: bool, extra_validation: bool = False) -> list:
    """Keep the best epoch (and decay the learning rate) when validating; end on the average with --ema."""
    import keras

    callbacks = []
    if validating:
        keep_best = keras.callbacks.EarlyStopping(
            monitor=monitor(extra_validation), mode="max", patience=settings.patience, restore_best_weights=True
        )
        # With an average, it is what validation sees and what keep_best keeps (so it goes first).
        callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if settings.ema_momentum else []
        callbacks.append(keep_best)
        if settings.lr_decay:
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_accuracy", mode="max", factor=settings.lr_decay, patience=0, min_lr=1e-5
                )
            )
    elif settings.ema_momentum:
        callbacks = [keras.callbacks.SwapEMAWeights()]  # end on the average, as validation chose it
    return callbacks


def monitor(extra_validation: bool) -> str:
    """The validation figure the epoch is chosen on: IMDB's accuracy, or the mean with the extra sets'."""
    return supervision.MEAN_MONITOR if extra_validation else "val_accuracy"


def adversarial_trainer(model, model_config: ModelConfig, settings: TrainingSettings):
    """The model itself, or with --adversarial the adversarial trainer around it (compiled); a model
    of the options masks its padding, and its attacked review is read with the mask too."""
    from training.adversarial import AdversarialTraining
    from training.model import compile_for_training

    if not settings.adversarial_epsilon:
        return model
    trainer = AdversarialTraining(model, settings.adversarial_epsilon, model_config)
    compile_for_training(
        trainer, settings.learning_rate, settings.clipnorm, settings.ema_momentum, settings.weight_decay
    )
    return trainer


def fit_model(
    split: data.Split,
    epochs: int,
    settings: TrainingSettings,
    config: ModelConfig,
    imdb: bool,
    verbose: int,
    validation: data.Split | None = None,
    extras: supervision.Extras = supervision.Extras(),
    callbacks: tuple = (),
) -> Fitted:
    """A new model and vocabulary fitted on `split`, the same seed each time, pretrained on its
    text first if asked; with `validation`, the best epoch's weights are kept. `callbacks` (Keras
    callbacks) run after fit's own, so they see the epoch's full logs: training.tune's reports each
    epoch to its study."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    texts = text_noun(imdb)
    tokenizer, model, model_config = build_vocabulary_and_model(split, settings, config, texts, verbose)
    token_ids = [tokenizer.token_ids(text) for text in split.texts]
    targets, teacher = distilled_targets(split, settings, config, imdb, verbose)
    pretraining = start_embedding(model, token_ids, model_config, settings, texts, verbose)
    own = training_callbacks(settings, validation is not None, bool(extras.validation))
    if validation is not None and extras.validation:
        own.insert(0, supervision.validation_callback(extras, tokenizer))  # before keep-best reads its logs
    trainer = adversarial_trainer(model, model_config, settings)
    stage(
        f"Training: up to {epochs_text(epochs)} on {len(split):,} {texts}"
        + (f", validating on {len(validation):,}" if validation is not None else ""),
        verbose,
    )
    inputs = pad_ids(token_ids, config.sequence_length)
    if extras.training:
        mixture = Mixture(
            inputs,
            targets.astype(np.float32),
            supervision.training_extras(extras, tokenizer, config.num_classes),
            settings.batch_size,
            settings.extra_ratio,
            settings.seed,
        )
        inputs, targets = mixture.dataset(), None
    history = trainer.fit(
        inputs,
        targets,
        epochs=epochs,
        batch_size=None if targets is None else settings.batch_size,
        validation_data=None
        if validation is None
        else (tokenizer.encode(validation.texts), one_hot(validation, config)),
        callbacks=[*own, *callbacks],
        verbose=verbose,
    ).history
    history = {key: [float(value) for value in values] for key, values in history.items()}
    model.optimizer = trainer.optimizer  # saved with the model: the state that trained it
    if teacher:
        pretraining = {**(pretraining or {}), "teacher": teacher}
    return Fitted(model, tokenizer, history, pretraining, model_config)
