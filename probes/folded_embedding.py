"""Does folding the embedding into the LSTM's input projection pay? A measured probe, not a shipped path.

    python -m probes.folded_embedding --data ../shared/data/aclImdb_labeled.tar.gz   # needs the dev extra

Folding replaces each step's input product, embedding(word) x W + b, by one row of a per-word
table computed at export (10,000 x 400 floats). The builtin ONNX `LSTM` node cannot take it: it
always multiplies its input by its input weights. So this builds the folded recurrence by hand,
an ONNX `Scan` whose body is the LSTM cell (h x R, gates, state update), starts it from the
padding state like the cached graph, checks it against the shipped cached graph on real test
reviews, and times both round-robin on one thread. It writes probes/folded-embedding.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench import REVIEWS_PER_BLOCK, ROUNDS, interleaved_latency, machine, review_buckets  # noqa: E402
from runtime import SentimentClassifier, backends, bundle  # noqa: E402

BUILTIN = "onnx-cached-float32 (builtin LSTM node)"  # the names of the two timed paths in the JSON
FOLDED = "onnx-cached-float32-folded (Scan)"


def folded_graph(folder: Path):
    """The cached graph's function with the embedding folded into the input projection, as ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from export.common import load_trained

    _, config, model = load_trained(folder)
    embedding = model.get_layer("embedding").get_weights()[0]
    kernel, recurrent_kernel, bias = model.get_layer("lstm").get_weights()  # Keras gate order i, f, g, o
    dense_kernel, dense_bias = model.get_layer("probabilities").get_weights()
    table = (embedding @ kernel + bias).astype(np.float32)  # one row of gate pre-activations a word
    units = config.lstm_units

    cell = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["x", "axis0"], ["x_row"]),
            helper.make_node("MatMul", ["h", "recurrent_kernel"], ["hr"]),
            helper.make_node("Add", ["x_row", "hr"], ["z"]),
            helper.make_node("Split", ["z"], ["zi", "zf", "zg", "zo"], axis=1, num_outputs=4),
            helper.make_node("Sigmoid", ["zi"], ["i"]),
            helper.make_node("Sigmoid", ["zf"], ["f"]),
            helper.make_node("Tanh", ["zg"], ["g"]),
            helper.make_node("Sigmoid", ["zo"], ["o"]),
            helper.make_node("Mul", ["f", "c"], ["fc"]),
            helper.make_node("Mul", ["i", "g"], ["ig"]),
            helper.make_node("Add", ["fc", "ig"], ["c_next"]),
            helper.make_node("Tanh", ["c_next"], ["c_tanh"]),
            helper.make_node("Mul", ["o", "c_tanh"], ["h_next"]),
        ],
        "lstm_cell",
        [
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, units]),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, units]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4 * units]),
        ],
        [
            helper.make_tensor_value_info("h_next", TensorProto.FLOAT, [1, units]),
            helper.make_tensor_value_info("c_next", TensorProto.FLOAT, [1, units]),
        ],
        [
            numpy_helper.from_array(recurrent_kernel, "recurrent_kernel"),
            numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["token_ids", "axis1"], ["ids"]),
            helper.make_node("Gather", ["table", "ids"], ["preactivations"]),
            helper.make_node("Squeeze", ["h0", "axis0"], ["h0_row"]),
            helper.make_node("Squeeze", ["c0", "axis0"], ["c0_row"]),
            helper.make_node("Scan", ["h0_row", "c0_row", "preactivations"], ["h", "c"], body=cell, num_scan_inputs=1),
            helper.make_node("MatMul", ["h", "dense_kernel"], ["logits_no_bias"]),
            helper.make_node("Add", ["logits_no_bias", "dense_bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "imdb_lstm_folded",
        [
            helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["steps", 1]),  # as the cached graph's
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, units]),
            helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, 1, units]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, config.num_classes])],
        [
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(dense_kernel, "dense_kernel"),
            numpy_helper.from_array(dense_bias, "dense_bias"),
            numpy_helper.from_array(np.array([0], np.int64), "axis0"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        ],
    )
    folded = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(folded)
    return folded, {"table_bytes": table.nbytes, "embedding_bytes": embedding.nbytes}


def folded_classifier(folded, builtin: SentimentClassifier, workdir: Path) -> SentimentClassifier:
    """The shipped cached classifier's tokenizer and padding states in front of the folded graph,
    which takes the same inputs (token_ids, h0, c0)."""
    import onnx

    path = workdir / "model.cached.folded.onnx"
    onnx.save(folded, path)
    return SentimentClassifier(
        builtin.bundle,
        builtin.tokenizer,
        backends.OnnxModel(path.read_bytes(), threads=1),
        builtin.padding_states,
        options=builtin.options,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / bundle.DEFAULT_BUNDLE)
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA"))
    parser.add_argument("--reviews", type=int, default=1000, help="test reviews for the parity check")
    parser.add_argument("--output", type=Path, default=ROOT / "probes/folded-embedding.json")
    args = parser.parse_args(argv)
    from training.data import load_imdb, sample

    test = load_imdb(args.data).test
    folded, sizes = folded_graph(args.model)
    with (
        tempfile.TemporaryDirectory() as workdir,
        SentimentClassifier.from_bundle(args.model, "onnx", "float32", "cached", threads=1) as builtin,
    ):
        probe = folded_classifier(folded, builtin, Path(workdir))
        checked = sample(test, args.reviews, seed=3).texts
        difference = float(np.abs(probe.probabilities(checked) - builtin.probabilities(checked)).max())
        median, buckets = review_buckets(builtin.tokenizer, test)
        latency = interleaved_latency(
            {BUILTIN: (builtin.classify, REVIEWS_PER_BLOCK), FOLDED: (probe.classify, REVIEWS_PER_BLOCK)}, buckets
        )
    results = {
        "machine": machine(),
        "rounds": ROUNDS,
        "median_test_review_tokens": median,
        "parity_reviews": len(checked),
        "max_abs_difference_vs_cached": difference,
        **sizes,
        "latency": latency,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_json(args.output, results)
    print(f"parity on {len(checked)} test reviews: max |folded - cached| = {difference:.2e}")
    for name, figures in latency.items():
        print(
            f"{name}: " + ", ".join(f"{bucket} tokens {figure['p50_ms']:.3f} ms" for bucket, figure in figures.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
