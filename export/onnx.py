"""Convert a trained bundle to ONNX, float32 and int8: `python -m export.onnx`.

Writes model.onnx / model.int8.onnx (reviews padded to the sequence length, dynamic batch),
model.cached.onnx / model.cached.int8.onnx (one review's own tokens, any length, time-major,
from the stored padding state) and model.steps.onnx / model.steps.int8.onnx (the cached graph's
probabilities after every token, for `explain`). tf2onnx lowers the dropout-free inference graph into exactly one
ONNX `LSTM` node; `onnxruntime.quantization.quantize_dynamic` turns it into
`DynamicQuantizeLSTM` with int8 weights.

A model of the options (runtime.config.ModelConfig: layers, bidirectional, attention) has one
`LSTM` node a layer (a bidirectional layer is one node of direction "bidirectional") and its
attention in plain MatMul, Tanh, Softmax and ReduceSum nodes; its graphs are "cached" (and
"steps" when defined, export.config.graphs_of), taking one review's tokens (1, length), no state.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from export import common, run
from export.config import graphs_of
from runtime import backends, bundle

OPSET = 17


def convert(model, metadata: dict, steps: bool = False, seed_graph: bool = True):
    """A Keras inference model as a checked ONNX ModelProto with `metadata` in its properties
    (`steps`: the per-step graph, see `simplify`; a model of the options, not `seed_graph`, keeps
    tf2onnx's graph and declares its input one review's, see `one_review_input`)."""
    import onnx
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        common.serving_function(model), input_signature=common.input_signature(model), opset=OPSET
    )
    if seed_graph:
        simplify(proto, steps)
    else:
        one_review_input(proto)
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def simplify(proto, steps: bool = False):
    """Drop the nodes tf2onnx adds around the embedding and the LSTM that this model never needs.

    Each costs ONNX Runtime a kernel call per review, which matters next to a short review's
    few LSTM steps. The embedding's ids are never negative, so the Gather reads the token ids
    directly, in the time-major order the LSTM reads; the Dense layer reads the LSTM's last state
    (Y_h) instead of slicing it from every step's output, which is no longer written; and the full
    graph's zero initial state is the LSTM's default. The full graph takes padded reviews in
    batches, (batch, length), and transposes them. The cached graph takes one review, so its
    inputs come in the LSTM's own shapes and need no node: token ids (length, 1), and h0 and c0
    (1, 1, units). The per-step graph ("steps", `steps=True`) takes the cached graph's inputs and
    applies the Dense softmax to every step's output (Y) instead of the last state, answering
    (length, 1, labels) time-major. The parity checks after export compare the result with Keras."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    constants = {tensor.name for tensor in graph.initializer}
    nodes = list(graph.node)
    gathers = [node for node in nodes if node.op_type == "Gather" and node.input[0] in constants]
    lstms = [node for node in nodes if node.op_type == "LSTM"]
    denses = [node for node in nodes if node.op_type == "MatMul" and node.input[1] in constants]
    if not (len(gathers) == len(lstms) == len(denses) == 1):
        raise common.ExportError("the ONNX graph is not one embedding Gather, one LSTM and one Dense MatMul")
    (gather,), (lstm,), (dense,) = gathers, lstms, denses
    added = _wire_inputs(graph, gather, lstm)
    lstm.input[0] = gather.output[0]
    # The direction axis the Dense input drops: Y is (length, directions, batch, units), Y_h (directions, batch, units).
    graph.initializer.append(numpy_helper.from_array(np.array([1 if steps else 0], np.int64), "direction_axis"))
    if steps:  # every step's state, time-major (length, 1, units)
        lstm.output[1] = lstm.output[2] = ""  # Y_h, Y_c: not read
        dense_input = helper.make_node(
            "Squeeze", [lstm.output[0], "direction_axis"], ["every_state"], name="every_state"
        )
        # tf2onnx flattens a 3-D Dense into a 2-D MatMul between Reshapes; MatMul takes 3-D as it is.
        reshape = next(node for node in nodes if dense.output[0] in node.input)
        for node in nodes:
            node.input[:] = [dense.output[0] if name == reshape.output[0] else name for name in node.input]
        classes = next(t for t in graph.initializer if t.name == dense.input[1]).dims[-1]
        graph.output[0].CopyFrom(
            helper.make_tensor_value_info(
                graph.output[0].name, graph.output[0].type.tensor_type.elem_type, ["length", 1, classes]
            )
        )
    else:
        lstm.output[0] = ""  # Y, every step's state
        dense_input = helper.make_node("Squeeze", [lstm.output[1], "direction_axis"], ["last_state"], name="last_state")
    dense.input[0] = dense_input.output[0]
    added[id(dense)] = dense_input
    _keep_what_the_output_needs(graph, nodes, added)
    return proto


def _wire_inputs(graph, gather, lstm) -> dict:
    """The cached graph's inputs in the LSTM's own shapes (one review: token ids, h0, c0); the full
    graph's token ids transposed to time-major, its initial state left to the LSTM's zeros. Returns
    the nodes added, by id of the node each feeds."""
    from onnx import helper

    inputs = {value.name: value for value in graph.input}
    if "h0" in inputs:
        units = inputs["h0"].type.tensor_type.shape.dim[-1].dim_value
        for name, dims in (("token_ids", ["length", 1]), ("h0", [1, 1, units]), ("c0", [1, 1, units])):
            inputs[name].CopyFrom(helper.make_tensor_value_info(name, inputs[name].type.tensor_type.elem_type, dims))
        gather.input[1] = "token_ids"
        lstm.input[5], lstm.input[6] = "h0", "c0"
        return {}
    time_major = helper.make_node(
        "Transpose", ["token_ids"], ["token_ids_time_major"], perm=[1, 0], name="token_ids_time_major"
    )
    gather.input[1] = time_major.output[0]
    lstm.input[5] = lstm.input[6] = ""  # initial_h, initial_c: zeros when absent
    return {id(gather): time_major}


def _keep_what_the_output_needs(graph, nodes: list, added: dict) -> None:
    """Put each added node before the node it feeds (`added`: by id of that node), then drop every
    node and initializer the graph's outputs do not depend on."""
    ordered = []
    for node in nodes:
        ordered += [added[id(node)]] if id(node) in added else []
        ordered.append(node)
    needed, kept = {value.name for value in graph.output}, []
    for node in reversed(ordered):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    for tensor in [tensor for tensor in graph.initializer if tensor.name not in needed]:
        graph.initializer.remove(tensor)


def one_review_input(proto):
    """Declare the token ids (1, length): a device graph of the options reads one review, and the
    runtime finds the review's axis by the one dynamic dimension. Converted with a dynamic batch,
    since tf2onnx makes a Loop, not an LSTM node, of a Keras 3 LSTM with a static batch of 1."""
    from onnx import helper

    (token_ids,) = [value for value in proto.graph.input if value.name == "token_ids"]
    elem_type = token_ids.type.tensor_type.elem_type
    token_ids.CopyFrom(helper.make_tensor_value_info("token_ids", elem_type, [1, "length"]))
    return proto


def check_structure(proto, config, graph: str) -> None:
    """One LSTM node a layer (the seed's: exactly one) and no Loop or Scan."""
    counts = lstm_node_count(proto)
    if counts["LSTM"] != config.layers or counts["Loop"] or counts["Scan"]:
        raise common.ExportError(
            f"the {graph} ONNX graph should have {config.layers} LSTM node(s) and no loop, has {counts}"
        )


def lstm_node_count(proto) -> dict:
    """How many LSTM-like and loop nodes a graph has: the structure the export promises."""
    ops = [node.op_type for node in proto.graph.node]
    return {op: ops.count(op) for op in ("LSTM", "DynamicQuantizeLSTM", "Loop", "Scan")}


def export_onnx(
    folder: str | Path,
    data_source: str | None = None,
    parity_limit: int | None = common.QUICK_PARITY_REVIEWS,
    precisions: tuple[str, ...] = bundle.PRECISIONS,
) -> bundle.Manifest:
    """Write the six ONNX artifacts (or those of `precisions`) into the bundle, each all or
    nothing (export.run.Exporter); return the new manifest."""
    return EXPORTER.export(folder, data_source, parity_limit, precisions)


def write_artifacts(staging: Path, manifest: bundle.Manifest, config, trained, precisions) -> None:
    """The ONNX converter: each graph converted (tf2onnx), checked, written, and quantized for int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for graph in graphs_of(config):
        model = common.inference_model(trained, config, graph, batch_size=None)
        fingerprint = json.dumps(common.fingerprint(manifest, model, graph))
        proto = convert(
            model,
            {backends.FINGERPRINT_KEY: fingerprint},
            steps=graph == bundle.STEPS_GRAPH,
            seed_graph=config.uses_padding_states,
        )
        check_structure(proto, config, graph)
        # int8 is quantized from the float32 file, which is written (and recorded) only if asked for.
        float_path = common.write_artifact(staging, f".float32-{graph}.onnx", lambda tmp: onnx.save(proto, str(tmp)))
        if "float32" in precisions:
            common.write_and_record(
                staging,
                manifest,
                "onnx",
                graph,
                "float32",
                model,
                lambda tmp: shutil.copyfile(float_path, tmp),
                opset=OPSET,
            )
        if "int8" not in precisions:
            float_path.unlink()
            continue
        # reduce_range keeps weights to 7 bits: without it, x86 CPUs lacking VNNI saturate in
        # ONNX Runtime's int8 kernels and answer differently from ARM (scripts/pi_emulation.py).
        # The 100x2 Dense layer stays float: quantizing it saves 600 bytes and costs 4 kernel calls
        # (attention's small MatMuls too).
        dense = [node.name for node in proto.graph.node if node.op_type == "MatMul"]
        common.write_and_record(
            staging,
            manifest,
            "onnx",
            graph,
            "int8",
            model,
            lambda tmp: quantize_dynamic(
                float_path, tmp, weight_type=QuantType.QInt8, reduce_range=True, nodes_to_exclude=dense
            ),
            opset=OPSET,
            quantization="dynamic int8, 7-bit weight range (quantize_dynamic)",
        )
        float_path.unlink()


EXPORTER = run.Exporter("onnx", write_artifacts)


def main(argv: list[str] | None = None) -> int:
    parser = common.export_arguments("export.onnx", __doc__.split("\n")[0])
    args = parser.parse_args(argv)
    return common.run_command(
        lambda: export_onnx(args.model, args.data, args.parity_limit or None, common.precisions_of(args.precision)),
        args.verbose,
        lambda manifest: common.wrote_line(args.model, manifest, "onnx", common.precisions_of(args.precision)),
    )


if __name__ == "__main__":
    sys.exit(main())
