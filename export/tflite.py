"""Convert a trained bundle to TFLite, float32 and int8: `python -m export.tflite`.

Writes model.tflite / model.int8.tflite (every review padded to the sequence length),
model.cached.tflite / model.cached.int8.tflite (a review's own tokens, any length, from the
stored padding state) and model.steps.tflite / model.steps.int8.tflite (the cached graph's
probabilities after every token, for `explain`), all from the dropout-free inference graph with a static batch of 1,
with builtin operators only. int8 is dynamic-range quantisation: int8 weights, float
activations, which every TFLite runtime runs without a representative dataset.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from export import common, run
from export.config import graphs_of
from runtime import backends, bundle

# Graph forms, and the graphs each applies to (the other graph stays "while"):
# "while": Keras' LSTM lowered to a TFLite WHILE loop of builtin ops (the default: smaller and,
# measured by benchmarks.bench, faster here). "unrolled": 500 copies of the cell; a dynamic length
# cannot be unrolled, so full graph only. "fused": one UNIDIRECTIONAL_SEQUENCE_LSTM operator,
# which the converter makes only from a Keras 2 LSTM (tf-keras); cached graph only, because the
# operator keeps its state in variable tensors between calls, which the cached graph overwrites
# with its h0 / c0 inputs every call while the full graph would start from the last review's state.
FORMS = {"while": bundle.ARTIFACT_GRAPHS, "unrolled": ("full",), "fused": ("cached",)}
# tf-keras declares a dependency on the package "tensorflow", which would install a second,
# 570 MB TensorFlow beside tensorflow-cpu; it is pure Python, so it goes in without its deps.
TF_KERAS_INSTALL = "pip install --no-deps 'tf-keras==2.21.*'"


def import_tf_keras():
    """Keras 2, which builds the fused form's graph."""
    try:
        import tf_keras
    except ImportError:
        raise common.ExportError(f"--form fused needs Keras 2: {TF_KERAS_INSTALL}") from None
    return tf_keras


def convert(model, quantize: bool) -> bytes:
    """A Keras inference model as a .tflite flatbuffer of builtin operators only."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved_model:
        common.export_saved_model(model, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex: devices lack it
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
            # Per-channel weights make FULLY_CONNECTED op version 12, which tflite-runtime 2.14
            # (the last release) cannot load; one scale per tensor runs on every TFLite runtime.
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        return converter.convert()


def with_fingerprint(content: bytes, fingerprint: dict) -> bytes:
    """The flatbuffer with `fingerprint` as a named metadata buffer (as TFLite Model Maker stores
    its labels and vocabulary), so the file says what it was exported for."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    data = schema.BufferT()
    data.data = np.frombuffer(json.dumps(fingerprint).encode("utf-8"), np.uint8)
    model.buffers.append(data)
    metadata = schema.MetadataT()
    metadata.name, metadata.buffer = backends.FINGERPRINT_KEY, len(model.buffers) - 1
    model.metadata = [entry for entry in model.metadata or [] if entry.name != backends.FINGERPRINT_KEY.encode()]
    model.metadata.append(metadata)
    return flatbuffer_utils.convert_object_to_bytearray(model)


def export_tflite(
    folder: str | Path,
    form: str = "while",
    data_source: str | None = None,
    parity_limit: int | None = common.QUICK_PARITY_REVIEWS,
    precisions: tuple[str, ...] = bundle.PRECISIONS,
) -> bundle.Manifest:
    """Write the six TFLite artifacts (or those of `precisions`) into the bundle, each all or
    nothing (export.run.Exporter); return the new manifest."""
    return exporter(form).export(folder, data_source, parity_limit, precisions)


def exporter(form: str = "while") -> run.Exporter:
    """The TFLite exporter of one form of the LSTM (FORMS)."""
    tf_keras = import_tf_keras() if form == "fused" else None  # before the slow part: fails at once

    def write_artifacts(staging: Path, manifest: bundle.Manifest, config, trained, precisions) -> None:
        if form != "while" and not config.uses_padding_states:
            raise common.ExportError(
                f"--form {form} is for the seed's graph; a model of the options has the while form"
            )
        for graph in graphs_of(config):
            graph_form = form if graph in FORMS[form] else "while"
            model = common.inference_model(
                trained,
                config,
                graph,
                batch_size=1,
                unroll=graph_form == "unrolled",
                library=tf_keras if graph_form == "fused" else None,
            )
            for precision in precisions:
                content = with_fingerprint(
                    convert(model, quantize=precision == "int8"), common.fingerprint(manifest, model, graph)
                )
                common.write_and_record(
                    staging,
                    manifest,
                    "tflite",
                    graph,
                    precision,
                    model,
                    lambda tmp: tmp.write_bytes(content),
                    form=graph_form,
                    quantization="dynamic-range int8 weights" if precision == "int8" else None,
                )

    return run.Exporter("tflite", write_artifacts)


def main(argv: list[str] | None = None) -> int:
    parser = common.export_arguments("export.tflite", __doc__.split("\n")[0])
    parser.add_argument(
        "--form",
        choices=list(FORMS),
        default="while",
        help="how the LSTM is lowered: while (a WHILE loop of builtin ops), unrolled "
        "(full graph only), fused (one UNIDIRECTIONAL_SEQUENCE_LSTM op, cached graph only; "
        "needs tf-keras)",
    )
    args = parser.parse_args(argv)
    return common.run_command(
        lambda: export_tflite(
            args.model, args.form, args.data, args.parity_limit or None, common.precisions_of(args.precision)
        ),
        args.verbose,
        lambda manifest: common.wrote_line(args.model, manifest, "tflite", common.precisions_of(args.precision)),
    )


if __name__ == "__main__":
    sys.exit(main())
