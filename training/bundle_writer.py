"""Write a trained model as a bundle: the Keras model, vocabulary, history, plots, the test
split's per-label figures and the manifest that records them all (training.fit's last stage).
A tuning trial's bundle has no test figures: no trial is evaluated on the test split."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from runtime import bundle
from training import metrics, splits, supervision
from training.records import Evaluation, PreparedData, Selection
from training.settings import TrainingSettings

# The per-label figures and the confusion matrix of the test split: a file of the bundle, since
# they grow with the labels (squared) and the manifest must stay small (bundle.MAX_MANIFEST_BYTES).
METRICS_NAME = "metrics.json"


def library_versions() -> dict:
    import keras
    import matplotlib
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
    }


def test_metrics_record(evaluation: Evaluation) -> dict:
    """The manifest's test figures; the ordinal ones only for labels that are numbers."""
    test_metrics = evaluation.metrics
    return {
        "test_accuracy": evaluation.accuracy,
        "test_loss": evaluation.loss,
        "test_macro_f1": test_metrics["macro_f1"],
        **(
            {
                "test_within_one_accuracy": test_metrics["within_one_accuracy"],
                "test_mean_absolute_error": test_metrics["mean_absolute_error"],
            }
            if "within_one_accuracy" in test_metrics
            else {}
        ),
    }


def build_manifest(
    staging: Path,
    name: str,
    settings: TrainingSettings,
    prepared: PreparedData,
    selection: Selection,
    evaluation: Evaluation | None,
    reports: list[Path],
) -> bundle.Manifest:
    """The bundle's manifest, for the files already in `staging`; without `evaluation`, no test figures."""
    fitted, history, best_epoch = selection.fitted, selection.history, selection.best_epoch
    return bundle.Manifest(
        name=name,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        model_config=fitted.config,
        tokenizer=bundle.TokenizerRecord(
            vocabulary=bundle.FileRecord.of(staging / bundle.VOCABULARY_NAME), words=len(fitted.tokenizer.words)
        ),  # runtime.text's ids and padding
        training=bundle.TrainingRecord(
            settings=asdict(settings),
            data=splits.data_record(
                prepared.dataset,
                prepared.fit,
                prepared.validation,
                prepared.test,
                prepared.test_fraction,
                settings.seed,
            ),
            supervision=supervision.record(prepared.extras),
            library_versions=library_versions(),
            machine=f"{platform.machine()}, {os.cpu_count()} cores",
        ),
        metrics=bundle.MetricsRecord(
            epochs_run=len(history["loss"]),
            best_epoch=best_epoch + 1,
            validation_accuracy=history["val_accuracy"][best_epoch],
            validation_loss=history["val_loss"][best_epoch],
            **(test_metrics_record(evaluation) if evaluation else {}),
            test_details=METRICS_NAME if evaluation else None,  # per-label figures and the confusion matrix
            training_seconds=round(selection.training_seconds, 1),
            seconds_per_epoch=round(selection.selection_seconds / len(history["loss"]), 1),
            refit=bundle.RefitRecord(**selection.refit) if selection.refit else None,
            pretraining=bundle.PretrainingRecord.from_dict(fitted.pretraining),  # and the teacher; None without any
        ),
        reports=[bundle.FileRecord.of(path) for path in reports],  # history and plots: read, not loaded
        artifacts={"keras": bundle.ArtifactRecord.of(staging / "model.keras", format="keras", precision="float32")},
    )


def write_bundle(
    output: Path,
    data_source: str | None,
    name: str,
    settings: TrainingSettings,
    prepared: PreparedData,
    selection: Selection,
    evaluation: Evaluation | None,
) -> bundle.Manifest:
    """Write the model, vocabulary, reports and manifest; `output` is replaced once they are all written.
    `evaluation` None (a tuning trial's bundle): no test figures, no metrics.json or confusion plot."""
    from training.model_card import write_card
    from training.plots import plot_confusion, plot_history

    fitted = selection.fitted
    with bundle.staging_folder(output, protected=[data_source]) as staging:
        fitted.model.save(staging / "model.keras")
        fitted.tokenizer.save(staging / bundle.VOCABULARY_NAME)
        bundle.write_json(staging / "history.json", selection.history)
        reports = [staging / "history.json", *plot_history(selection.history, staging)]
        if evaluation is not None:
            metrics.write_report(
                staging / METRICS_NAME, {"split": "test", "texts": len(prepared.test), **evaluation.metrics}
            )
            confusion = plot_confusion(fitted.config.labels, evaluation.metrics["confusion"]["counts"], staging)
            reports += [staging / METRICS_NAME, *([confusion] if confusion else [])]
        manifest = build_manifest(staging, name, settings, prepared, selection, evaluation, reports)
        bundle.write_manifest(staging, manifest)
        manifest = write_card(staging, manifest)  # MODEL_CARD.md for the data it was trained on
    return manifest
