"""Fill the README's and docs' measured figures, and write the model card, from the files the
commands wrote, so no figure is typed by hand.

    python scripts/update_readme.py

Replaces each block between `<!-- begin:NAME -->` and `<!-- end:NAME -->` in README.md and
docs/*.md: accuracy, parity and tuning from models/imdb-lstm/manifest.json (and docs/tuning/runs.jsonl),
the benchmark summary from benchmarks/results.json (python -m benchmarks.bench), the model options'
tables from benchmarks/options.json and options-reading.json (python -m benchmarks.options, the
seed's recipe and the reading one), the folding probe
from probes/folded-embedding.json (python -m probes.folded_embedding), install and wheel sizes from
benchmarks/install_sizes.json (scripts/install_sizes.sh), the tuner's trials per hour with 1, 2
and 3 workers from benchmarks/tune-rate.json (python -m benchmarks.tune_rate), the Raspberry Pi
emulation's summary from benchmarks/pi-emulation-*.txt (scripts/pi_emulation.py --record), the
fleet's swap and update-check figures from benchmarks/swap.json (python -m benchmarks.swap), and
the example answers of README.md, docs/serving.md and docs/raspberry-pi.md from the shipped bundle
itself (scripts/doc_examples.py: run it again after shipping a new model). Then writes
models/imdb-lstm/MODEL_CARD.md (scripts/model_card.py) and records it in the manifest.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench, options, swap, tune_rate  # noqa: E402
from probes.folded_embedding import BUILTIN, FOLDED  # noqa: E402
from runtime import bundle  # noqa: E402
from runtime.config import ModelConfig  # noqa: E402
from scripts import doc_examples, model_card, training_runs  # noqa: E402


def changed_model_config(manifest: bundle.Manifest) -> dict:
    """The model config values a run changed from the seed's (dropout rates, say)."""
    seed = ModelConfig().to_dict()
    return {key: value for key, value in manifest.model_config.to_dict().items() if seed.get(key) != value}


def accuracy_block(manifest: bundle.Manifest) -> str:
    metrics, training = manifest.metrics, manifest.training
    settings = training.settings
    return (
        f"Test accuracy of the shipped model: **{metrics.test_accuracy * 100:.2f} %** on "
        f"{training.data.test_reviews:,} test reviews (loss {metrics.test_loss:.4f}), with the epoch chosen on "
        f"{training.data.validation_reviews:,} validation reviews carved from the training set: epoch "
        f"{metrics.best_epoch} of {metrics.epochs_run}, validation accuracy {metrics.validation_accuracy * 100:.2f} %"
        + (
            f"; then a fresh model was trained for those {refit.epochs} epochs on all {refit.reviews:,} training reviews. "
            if (refit := metrics.refit)
            else ". "
        )
        + f"Training took {metrics.training_seconds / 60:.1f} minutes in all, {metrics.seconds_per_epoch:.0f} s per "
        f"epoch of the validated run"
        + (f" after {start.seconds:.0f} s of {start.method}" if (start := metrics.pretraining) else "")
        + f", on {training.machine} (TensorFlow {training.library_versions['tensorflow']}, "
        f"Keras {training.library_versions['keras']}). Settings recorded in the manifest: "
        + ", ".join(f"{key} {value}" for key, value in {**changed_model_config(manifest), **settings}.items())
        + "."
    )


def tuning_block(manifest: bundle.Manifest) -> str:
    """Every training run of docs/tuning/runs.jsonl (scripts/training_runs.py), the shipped one first."""
    rows = training_runs.load()
    shipped = next((row["run"] for row in rows if row["trained"] == manifest.created[:16].replace("T", " ")), None)
    return training_runs.table(rows, shipped)


def parity_block(manifest: bundle.Manifest) -> str:
    from export import step_parity
    from export.parity import format_table

    block = format_table(model_card.classify_parity(manifest), manifest.artifacts)
    steps = model_card.steps_parity(manifest)
    if steps:
        block += (
            "\n\nThe per-step artifacts (`explain`, [docs/explain.md](explain.md)) at every step of the same "
            "reviews:\n\n" + step_parity.format_table(steps, manifest.artifacts)
        )
    return block


# Published figures for the same test sets, for scale (not measured here).
PUBLISHED = {
    "imdb_test": "NBSVM 91.2 % (Wang & Manning 2012)",
    "sst2_test": "LSTM 84.9 %, bidirectional LSTM 87.5 % (Tai et al. 2015)",
}


def benchmarks_block(manifest: bundle.Manifest, peer: dict | None) -> str | None:
    """The shipped bundle's benchmarks (export.evaluate) beside the n-gram peer's (benchmarks.peer)."""
    evaluation = manifest.metrics.evaluation if manifest.metrics else None
    if evaluation is None:
        return None
    rows = peer["rows"] if peer else []
    header = ["benchmark", "texts", f"shipped LSTM ({evaluation.backend}, {evaluation.precision})"]
    header += [f"peer: n-grams, {row['peer']}" for row in rows] + ["published, for scale"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, title in model_card.BENCHMARK_NAMES.items():
        score = getattr(evaluation, name)
        if score is None:
            continue
        peers = [f"{100 * row[name]['accuracy']:.2f} %" if name in row else "—" for row in rows]
        cells = [title, f"{score.texts:,}", f"**{100 * score.accuracy:.2f} %**", *peers, PUBLISHED.get(name, "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\nThe LSTM through the installed runtime (`python -m export.evaluate`, {evaluation.measured}, "
        f"{evaluation.machine})"
        + (f"; the peer by `python -m benchmarks.peer` ({peer['measured']}, {peer['machine']})" if peer else "")
        + ". CAD's originals are IMDB training reviews, which both models trained on; its revisions are new text."
    )
    return "\n".join(lines)


def bench_block(results: dict, repeat: dict | None = None) -> str:
    text = bench.render_markdown(results)
    targets = text[text.index("## Against the targets") :].split("\n", 2)[2].strip()
    machine = results["machine"]
    block = (
        f"Measured by `python -m benchmarks.bench` on {machine['date'][:10]} ({machine['cpu']}, {machine['cores']} cores); "
        f"all figures in [BENCHMARKS.md](../BENCHMARKS.md).\n\n{targets}"
    )
    if repeat:  # the same command run earlier on the same bundle: how far figures move between runs here
        runs = [bench.summary(repeat), bench.summary(results)]
        block += (
            f"\n\nRun to run on this shared machine, the same command on the same bundle "
            f"(`benchmarks/repeat-run.json`, {repeat['machine']['date'][11:16]} UTC, then this run, "
            f"{machine['date'][11:16]} UTC): best path "
            + " and ".join(f"{run['best_p50_ms']:.3f} ms" for run in runs)
            + ", "
            + " and ".join(f"{run['speedup_vs_keras_predict']:.0f}x" for run in runs)
            + " over Keras, "
            + " and ".join(f"{run['speedup_vs_same_backend_full']:.2f}x" for run in runs)
            + " over its full graph."
        )
    return block


def folding_block(probe: dict) -> str:
    median = str(probe["median_test_review_tokens"])
    builtin, folded = (probe["latency"][name][median]["p50_ms"] for name in (BUILTIN, FOLDED))
    return (
        f"Measured by `python -m probes.folded_embedding` on {probe['machine']['date'][:10]} ({probe['machine']['cpu']}, "
        f"{probe['machine']['cores']} cores), {probe['rounds']} rounds round-robin: the folded graph agrees with the "
        f"cached graph to {probe['max_abs_difference_vs_cached']:.1e} on {probe['parity_reviews']:,} test reviews, "
        f"but a median review ({median} tokens) takes **{folded:.3f} ms** against {builtin:.3f} ms "
        f"(**{folded / builtin:.1f}x slower**), and its table is {probe['table_bytes'] / 2**20:.1f} MiB against "
        f"the embedding's {probe['embedding_bytes'] / 2**20:.1f} MiB."
    )


def sizes_block(sizes: dict) -> str:
    names = {
        "litert": "runtime + LiteRT",
        "onnx": "runtime + ONNX Runtime",
        "tflite-runtime": "runtime + tflite-runtime",
        "all": "training + export + tests (all extras)",
    }
    lines = ["| environment | installed size |", "|---|---|"]
    lines += [
        f'| `pip install "{sizes["wheel"]}[{extra}]"` ({names[extra]}) | {mib} MiB |'
        for extra, mib in sizes["mib"].items()
    ]
    lines.append(
        f"\nThe wheel itself is {sizes['wheel_bytes'] / 2**20:.1f} MiB. Measured by `scripts/install_sizes.sh` on "
        f"{sizes['date'][:10]} (Python {sizes['python']}, {sizes['machine']}): site-packages of a fresh virtual "
        "environment, pip itself excluded."
    )
    return "\n".join(lines)


def results_block(manifest: bundle.Manifest, results: dict | None, sizes: dict | None) -> str:
    """The README's short table: what a user gets, each figure with where it comes from."""
    parity = model_card.classify_parity(manifest)  # the per-step artifacts' figures are of another kind
    floats = [r.figures for key, r in parity.items() if key.endswith("float32")]
    int8s = [r.figures for key, r in parity.items() if key.endswith("int8")]
    data = manifest.training.data
    rows = [
        (
            "Test accuracy (Keras model)",
            f"{manifest.metrics.test_accuracy * 100:.2f} % on {data.test_reviews:,} IMDB test reviews",
            "[training](docs/training.md)",
        )
    ]
    evaluation = manifest.metrics.evaluation if manifest.metrics else None
    if evaluation is not None:
        scores = [
            (title, getattr(evaluation, name))
            for name, title in model_card.BENCHMARK_NAMES.items()
            if name != "imdb_test"
        ]
        rows.append(
            (
                f"Reading sentences (the device runtime, {evaluation.backend} {evaluation.precision})",
                "; ".join(f"{title} {100 * score.accuracy:.2f} %" for title, score in scores if score is not None),
                "[benchmarks](docs/training.md#benchmarks)",
            )
        )
    if floats and int8s:
        rows.append(
            (
                "Exported artifacts vs Keras",
                f"on {floats[0]['reviews']:,} test reviews, float32 differs by at most "
                f"{max(r['max_abs_diff'] for r in floats):.1e} with the same label on "
                f"{min(r['label_agreement'] for r in floats) * 100:.2f} %; int8 gives the same label on "
                f"{min(r['label_agreement'] for r in int8s) * 100:.2f} % or more",
                "[parity](docs/export.md)",
            )
        )
    if results is not None:
        paths = {bench.path_name(path): path for path in results["paths"]}
        median = str(results["median_test_review_tokens"])
        best = bench.summary(results)
        default = paths["tflite-cached-float32"]["latency"][median]["p50_ms"]
        rows.append(
            (
                "One median review (173 tokens), one thread",
                f"{default:.2f} ms (default: LiteRT, float32); "
                f"{best['best_p50_ms']:.2f} ms ({best['best_path']}); Keras `predict` "
                f"{best['keras_predict_p50_ms']:.0f} ms",
                f"[performance](docs/performance.md), "
                f"{results['machine']['cpu']} {results['machine']['cores']} cores, {results['machine']['date'][:10]}",
            )
        )
    if sizes is not None and "wheel_bytes" in sizes:
        device = ", ".join(
            f"{extra} {sizes['mib'][extra]} MiB" for extra in ("litert", "onnx") if extra in sizes["mib"]
        )
        rows.append(
            (
                "Package",
                f"wheel {sizes['wheel_bytes'] / 2**20:.1f} MiB; installed with its interpreter: {device}",
                f"`scripts/install_sizes.sh`, {sizes['date'][:10]}",
            )
        )
    lines = ["| | | measured by |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def read_json(path: str) -> dict | None:
    """A results file under the repository root, or None if its command has not been run."""
    file = ROOT / path
    return json.loads(file.read_text()) if file.is_file() else None


def replace_block(text: str, name: str, body: str, where: str) -> str:
    pattern = re.compile(rf"(<!-- begin:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no block {name}")
    return pattern.sub(lambda match: match.group(1) + body + "\n" + match.group(2), text)


def fill(path: str, blocks: dict) -> None:
    """Replace the named blocks of one Markdown file (a block whose figures are missing stays)."""
    file = ROOT / path
    text = file.read_text()
    for name, body in blocks.items():
        if body is not None:
            text = replace_block(text, name, body, path)
    file.write_text(text)


def main() -> int:
    folder = bundle.REPOSITORY_BUNDLE
    manifest = bundle.Manifest.read(folder)
    results, sizes = read_json("benchmarks/results.json"), read_json("benchmarks/install_sizes.json")
    folding = read_json("probes/folded-embedding.json")
    fill("README.md", {"results": results_block(manifest, results, sizes)})
    option_results = read_json("benchmarks/options.json")
    reading_options = read_json("benchmarks/options-reading.json")
    fill(
        "docs/training.md",
        {
            "accuracy": accuracy_block(manifest),
            "tuning": tuning_block(manifest),
            "ablations": training_runs.ablation_table(training_runs.load()),
            "options": option_results and options.table(option_results),
            "options-reading": reading_options and options.table(reading_options),
            "benchmarks": benchmarks_block(manifest, read_json("benchmarks/peer.json")),
        },
    )
    fill("docs/export.md", {"parity": parity_block(manifest)})
    rate = read_json("benchmarks/tune-rate.json")
    fill("docs/tuning.md", {"tune-rate": rate and tune_rate.table(rate)})
    fill("docs/install.md", {"sizes": sizes and sizes_block(sizes)})
    swaps = read_json("benchmarks/swap.json")
    fill("docs/fleet.md", {"swap": swaps and swap.markdown(swaps)})
    fill(
        "docs/performance.md",
        {
            "bench": results and bench_block(results, read_json("benchmarks/repeat-run.json")),
            "folding": folding and folding_block(folding),
        },
    )
    emulations = {
        path.stem.removeprefix("pi-emulation-"): path.read_text().rstrip()
        for path in (ROOT / "benchmarks").glob("pi-emulation-*.txt")
    }  # cortex-a72 (Pi 4), cortex-a76 (Pi 5)
    fill("docs/pi-emulation.md", {f"pi-{cpu}": f"```\n{summary}\n```" for cpu, summary in emulations.items()})
    for example in doc_examples.examples(folder):  # what the shipped bundle answers now
        fill(example.path, {example.block: example.body})
    model_card.write(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
