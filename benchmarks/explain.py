"""What explaining costs, and where the per-step output lives: `python -m benchmarks.explain`.

From the repository root, with the export extra (it converts one graph form itself) and the dataset:

    python -m benchmarks.explain --data ../shared/data/aclImdb_labeled.tar.gz

The per-step output (the probabilities after every token) could be a second output of the cached
graph, which classify runs, or a separate artifact (model.steps.*). Both forms are built from the
bundle's trained model and timed side by side, on one thread, on real test reviews of exactly the
median length, in short interleaved blocks over many rounds:

1. Classify with today's cached graph, and with the cached graph that has the second output (an
   interpreter computes every output of a graph on every call, asked for or not).
2. Explain's model calls: the cached graph with both outputs read, against the separate steps
   artifact (which `explain` runs beside the cached graph, whose answer it ends on).
3. End to end through the runtime: `classifier.classify(text)` against `classifier.explain(text)`
   (tokenizing, word spans, both model calls), float32 and int8.

It writes benchmarks/explain.json and rewrites only its own section of BENCHMARKS.md (between
`<!-- begin:explain -->` and `<!-- end:explain -->`, added at the end if missing), with the sizes
of the per-step artifacts. Timings are never asserted anywhere: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.sections import write_section
from runtime import SentimentClassifier, backends, bundle

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "explain.json"
MARKDOWN = HERE.parent / "BENCHMARKS.md"
SECTION = "explain"
ROUNDS = 40
BLOCK = 8  # calls in a row per path and round
REVIEWS = 24  # real test reviews of exactly the median length, cycled through


def median_length_texts(folder: Path, data_source: str | None) -> tuple[int, list[str]]:
    """The median test review's token count and real test reviews of exactly that many tokens."""
    from training.data import load_imdb

    classifier = SentimentClassifier.from_bundle(folder, backends.available_backends()[0])
    texts = load_imdb(data_source).test.texts
    lengths = [len(classifier.tokenizer.token_ids(text)) for text in texts]
    median = int(np.median(lengths))
    return median, [text for text, length in zip(texts, lengths) if length == median][:REVIEWS]


# --- the two-output form: the cached graph that also answers after every step --------------------


def two_output_tflite(trained, config) -> bytes:
    import tensorflow as tf

    from export import common
    from training.model import build_inference_model

    steps = build_inference_model(
        trained, config, batch_size=1, sequence_length=None, initial_state=True, return_sequences=True
    )

    @tf.function(input_signature=common.input_signature(steps))
    def serve(token_ids, h0, c0):
        every = steps({"token_ids": token_ids, "h0": h0, "c0": c0})
        return {"probabilities": every[:, -1, :], "step_probabilities": every}

    import keras

    with tempfile.TemporaryDirectory() as saved_model:  # as export.tflite converts: through a SavedModel
        archive = keras.export.ExportArchive()
        archive.track(steps)
        archive.add_endpoint(name="serving_default", fn=serve)
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def two_output_onnx(cached_onnx: bytes) -> bytes:
    """The bundle's cached ONNX graph with the LSTM's every-step output (Y) also going through the
    Dense softmax, as a second graph output."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(cached_onnx)
    graph = proto.graph
    (lstm,) = [node for node in graph.node if node.op_type == "LSTM"]
    (matmul,) = [node for node in graph.node if node.op_type == "MatMul"]
    add = next(node for node in graph.node if node.op_type == "Add" and matmul.output[0] in node.input)
    bias = next(name for name in add.input if name != matmul.output[0])
    classes = next(t for t in graph.initializer if t.name == matmul.input[1]).dims[-1]
    lstm.output[0] = "every_state_y"
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "y_direction_axis"))
    graph.node.extend(
        [
            helper.make_node("Squeeze", ["every_state_y", "y_direction_axis"], ["every_state"]),
            helper.make_node("MatMul", ["every_state", matmul.input[1]], ["every_logits_unbiased"]),
            helper.make_node("Add", ["every_logits_unbiased", bias], ["every_logits"]),
            helper.make_node("Softmax", ["every_logits"], ["step_probabilities"], axis=-1),
        ]
    )
    graph.output.append(
        helper.make_tensor_value_info("step_probabilities", onnx.TensorProto.FLOAT, ["length", 1, classes])
    )
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class RawModel:
    """An interpreter called the way runtime.backends calls one, but able to read several outputs."""

    def __init__(self, backend: str, content: bytes):
        self.backend = backend
        if backend == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
            self.session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
            self.outputs = {value.name: value.name for value in self.session.get_outputs()}
            self.shape = (-1, 1)
        else:
            module = __import__(backends.tflite_module_name(), fromlist=["Interpreter"])
            self.interpreter = module.Interpreter(model_content=content, num_threads=1)
            self.interpreter.allocate_tensors()
            runner = self.interpreter.get_signature_runner()
            self.inputs = {name: detail["index"] for name, detail in runner.get_input_details().items()}
            self.outputs = {name: detail["index"] for name, detail in runner.get_output_details().items()}
            self.shape, self.sizes = (1, -1), {}

    def run(self, feeds: dict, outputs: list[str]) -> list[np.ndarray]:
        if self.backend == "onnx":
            return self.session.run(outputs, feeds)
        resized = False
        for name, value in feeds.items():
            if self.sizes.get(name) != value.shape:
                self.interpreter.resize_tensor_input(self.inputs[name], value.shape)
                self.sizes[name], resized = value.shape, True
        if resized:
            self.interpreter.allocate_tensors()
        for name, value in feeds.items():
            self.interpreter.set_tensor(self.inputs[name], value)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(self.outputs[name]).copy() for name in outputs]


def feeds_for(classifier: SentimentClassifier, ids: list[int], shape: tuple) -> dict:
    """The cached graph's inputs for one review: its ids and the state after its padding."""
    length = classifier.config.sequence_length
    h0, c0 = classifier.padding_states[min(length - len(ids), len(classifier.padding_states) - 1)]
    return {"token_ids": np.array(ids, np.int32).reshape(shape), "h0": h0, "c0": c0}


def interleaved(calls: dict, items: list, rounds: int = ROUNDS) -> dict:
    """p50 (and p90) in milliseconds of each call over the items, in short blocks, round after round."""
    for call in calls.values():  # warm: first calls allocate
        for item in items:
            call(item)
    timings = {name: [] for name in calls}
    count = 0
    for round_index in range(rounds):
        names = list(calls) if round_index % 2 == 0 else list(reversed(calls))
        for name in names:
            for _ in range(BLOCK):
                item = items[count % len(items)]
                count += 1
                started = time.perf_counter_ns()
                calls[name](item)
                timings[name].append((time.perf_counter_ns() - started) / 1e6)
    return {
        name: {"p50_ms": statistics.median(values), "p90_ms": float(np.percentile(values, 90)), "calls": len(values)}
        for name, values in timings.items()
    }


def run(folder: Path, data_source: str | None) -> dict:
    from benchmarks.bench import machine
    from export.common import load_trained

    artifacts = bundle.Manifest.read(folder).artifacts
    median, texts = median_length_texts(folder, data_source)
    results = {
        "machine": machine(),
        "bundle": str(folder),
        "median_test_review_tokens": median,
        "reviews": len(texts),
        "rounds": ROUNDS,
        "block": BLOCK,
        "forms": {},
        "end_to_end": {},
        "sizes": {},
    }
    _, config, trained = load_trained(folder)
    for backend in backends.available_backends():
        print(f"{backend}: building the two-output form", file=sys.stderr)
        classifier = SentimentClassifier.from_bundle(folder, backend, threads=1)
        cached_record = artifacts[bundle.artifact_key(backend, "cached", "float32")]
        steps_record = artifacts[bundle.artifact_key(backend, bundle.STEPS_GRAPH, "float32")]
        cached_bytes = bundle.read_file(folder, cached_record)
        two_bytes = two_output_tflite(trained, config) if backend == "tflite" else two_output_onnx(cached_bytes)
        cached, two, steps = (
            RawModel(backend, content) for content in (cached_bytes, two_bytes, bundle.read_file(folder, steps_record))
        )
        ids = [classifier.tokenizer.token_ids(text) for text in texts]
        feeds = [feeds_for(classifier, review, cached.shape) for review in ids]
        check = two.run(feeds[0], ["probabilities", "step_probabilities"])
        if np.abs(check[0].ravel() - cached.run(feeds[0], ["probabilities"])[0].ravel()).max() > 1e-5:
            raise RuntimeError(f"{backend}: the two-output form does not answer as the cached graph")
        print(f"{backend}: timing the forms", file=sys.stderr)
        figures = interleaved(
            {
                "classify: cached graph (today)": lambda f: cached.run(f, ["probabilities"]),
                "classify: cached graph with a second, per-step output": lambda f: two.run(f, ["probabilities"]),
                "explain's calls: cached graph with both outputs read": lambda f: two.run(
                    f, ["probabilities", "step_probabilities"]
                ),
                "explain's calls: cached graph + separate steps artifact": lambda f: (
                    cached.run(f, ["probabilities"]),
                    steps.run(f, ["probabilities"]),
                ),
                "steps artifact alone": lambda f: steps.run(f, ["probabilities"]),
            },
            feeds,
        )
        results["forms"][backend] = {
            "figures": figures,
            "two_output_bytes": len(two_bytes),
            "cached_bytes": cached_record.bytes,
            "steps_bytes": steps_record.bytes,
        }
        for precision in bundle.PRECISIONS:
            key = bundle.artifact_key(backend, bundle.STEPS_GRAPH, precision)
            if key not in artifacts:
                continue
            print(f"{backend} {precision}: classify against explain, end to end", file=sys.stderr)
            with SentimentClassifier.from_bundle(folder, backend, precision, threads=1) as runtime_classifier:
                results["end_to_end"][f"{backend}-{precision}"] = interleaved(
                    {"classify(text)": runtime_classifier.classify, "explain(text)": runtime_classifier.explain}, texts
                )
            results["sizes"][key] = artifacts[key].bytes
            results["sizes"][bundle.artifact_key(backend, "cached", precision)] = artifacts[
                bundle.artifact_key(backend, "cached", precision)
            ].bytes
    return results


def render_section(results: dict) -> str:
    """The BENCHMARKS.md section, from the JSON: never typed by hand."""
    m = results["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    mib = lambda size: f"{size / 2**20:.2f} MiB"  # noqa: E731
    lines = [
        f"<!-- begin:{SECTION} -->",
        "## Explain: where the per-step output lives, and what it costs",
        "",
        f"Produced by `python -m benchmarks.explain` on {m['date']}: {m['cpu']}, {m['cores']} cores, {m['system']}; "
        f"{versions}. One thread; {results['reviews']} real test reviews of exactly the median length "
        f"({results['median_test_review_tokens']} tokens), {results['rounds']} interleaved rounds of "
        f"{results['block']} calls a path; milliseconds, p50 (p90).",
        "",
        "### The per-step output: a second output of the cached graph, or a separate artifact (float32, model calls only)",
        "",
        "| path | " + " | ".join(results["forms"]) + " |",
        "|---|" + "---|" * len(results["forms"]),
    ]
    paths = next(iter(results["forms"].values()))["figures"]
    for path in paths:
        cells = [
            f"{form['figures'][path]['p50_ms']:.3f} ({form['figures'][path]['p90_ms']:.3f})"
            for form in results["forms"].values()
        ]
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    for backend, form in results["forms"].items():
        today = form["figures"]["classify: cached graph (today)"]["p50_ms"]
        extra = form["figures"]["classify: cached graph with a second, per-step output"]["p50_ms"]
        lines.append("")
        lines.append(
            f"- {backend}: with the second output, classify takes {extra / today:.2f}x today's time "
            f"({extra - today:+.3f} ms); the two-output file is {mib(form['two_output_bytes'])} against "
            f"{mib(form['cached_bytes'])}, the separate steps artifact {mib(form['steps_bytes'])}."
        )
    lines += [
        "",
        "Chosen: a separate artifact (model.steps.*). It leaves classify's graph, bytes and speed as they "
        "were on both interpreters; explain pays with a second model call. The per-step graph costs TFLite "
        "more than the cached graph does because its WHILE loop copies the whole every-step output at each step.",
        "",
        "### classify(text) against explain(text), end to end (tokenizing and word spans included)",
        "",
        "| backend, precision | classify | explain | explain / classify |",
        "|---|---|---|---|",
    ]
    for name, figures in results["end_to_end"].items():
        classify, explain = figures["classify(text)"], figures["explain(text)"]
        lines.append(
            f"| {name} | {classify['p50_ms']:.3f} ({classify['p90_ms']:.3f}) | "
            f"{explain['p50_ms']:.3f} ({explain['p90_ms']:.3f}) | {explain['p50_ms'] / classify['p50_ms']:.2f}x |"
        )
    lines += ["", "### Sizes", "", "| artifact | size |", "|---|---|"]
    lines += [f"| {key} | {mib(size)} |" for key, size in results["sizes"].items()]
    lines.append(f"<!-- end:{SECTION} -->")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.explain",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", type=Path, default=bundle.REPOSITORY_BUNDLE, help="bundle folder")
    parser.add_argument(
        "--data",
        default=os.environ.get("IMDB_DATA"),
        help="aclImdb archive or folder for the median-length reviews ($IMDB_DATA)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON")
    parser.add_argument("--markdown", type=Path, default=MARKDOWN, help="file whose section is rewritten")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only rewrite the section from a results file")
    args = parser.parse_args(argv)
    if args.render:
        write_section(args.markdown, SECTION, render_section(json.loads(args.render.read_text())))
        return 0
    results = run(args.model, args.data)
    bundle.write_json(args.output, results)
    write_section(args.markdown, SECTION, render_section(results))
    print(render_section(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
