"""Convert a trained bundle to ONNX, float32 and int8: `python -m export.onnx`.

Writes model.onnx / model.int8.onnx (reviews padded to the sequence length, dynamic batch) and
model.cached.onnx / model.cached.int8.onnx (a review's own tokens, dynamic batch and length,
from the stored padding state). tf2onnx lowers the dropout-free inference graph into exactly one
ONNX `LSTM` node; `onnxruntime.quantization.quantize_dynamic` turns it into
`DynamicQuantizeLSTM` with int8 weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

from runtime import bundle
from export import common

OPSET = 17


def convert(model, metadata: dict):
    """A Keras inference model as a checked ONNX ModelProto with `metadata` in its properties."""
    import onnx
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        common.serving_function(model), input_signature=common.input_signature(model), opset=OPSET)
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def lstm_node_count(proto) -> dict:
    """How many LSTM-like and loop nodes a graph has: the structure the export promises."""
    ops = [node.op_type for node in proto.graph.node]
    return {op: ops.count(op) for op in ("LSTM", "DynamicQuantizeLSTM", "Loop", "Scan")}


def export_onnx(folder: str | Path, parity_limit: int | None = 200) -> dict:
    """Write the four ONNX artifacts into the bundle and check them; return the manifest."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    manifest, config, trained = common.load_trained(folder)
    for graph in bundle.GRAPHS:
        model = common.inference_model(trained, config, graph, batch_size=None)
        metadata = {"inputs": ",".join(common.input_name(tensor) for tensor in model.inputs),
                    "outputs": "probabilities", "labels": ",".join(config.labels),
                    "sequence_length": str(config.sequence_length), "graph": graph,
                    "vocabulary_sha256": manifest["tokenizer"]["vocabulary"]["sha256"]}
        proto = convert(model, metadata)
        counts = lstm_node_count(proto)
        if counts["LSTM"] != 1 or counts["Loop"] or counts["Scan"]:
            raise common.ExportError(f"the {graph} ONNX graph should have one LSTM node and no loop, has {counts}")
        float_path = common.write_and_record(folder, manifest, "onnx", graph, "float32", model,
                                             lambda tmp: onnx.save(proto, str(tmp)), opset=OPSET)
        # reduce_range keeps weights to 7 bits: without it, x86 CPUs lacking VNNI saturate in
        # ONNX Runtime's int8 kernels and answer differently from ARM (scripts/pi_emulation.py).
        common.write_and_record(folder, manifest, "onnx", graph, "int8", model,
                                lambda tmp: quantize_dynamic(float_path, tmp, weight_type=QuantType.QInt8,
                                                             reduce_range=True),
                                opset=OPSET, quantization="dynamic int8, 7-bit weight range (quantize_dynamic)")
    common.record_artifacts(folder, {}, padding_states=common.ensure_padding_states(folder, trained, config))
    keys = [bundle.artifact_key("onnx", graph, precision) for graph in bundle.GRAPHS for precision in bundle.PRECISIONS]
    return common.check_exported(folder, trained, keys, parity_limit)


def main(argv: list[str] | None = None) -> int:
    parser = common.export_arguments("python -m export.onnx", __doc__.split("\n")[0])
    args = parser.parse_args(argv)
    return common.run_export(lambda: export_onnx(args.model, args.parity_limit or None))


if __name__ == "__main__":
    sys.exit(main())
