"""Fill the README's measured figures from the files the commands wrote, so none is typed by hand.

    python scripts/update_readme.py

Replaces each block between `<!-- begin:NAME -->` and `<!-- end:NAME -->` in README.md:
accuracy and parity from models/imdb-lstm/manifest.json, the benchmark summary from
benchmarks/results.json (python -m runtime.bench), the folding probe from
benchmarks/folded-embedding.json (scripts/folded_embedding.py), install sizes from
benchmarks/install_sizes.json (scripts/install_sizes.sh).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench  # noqa: E402
from runtime import bundle  # noqa: E402
from runtime.config import ModelConfig  # noqa: E402
from scripts.folded_embedding import BUILTIN, FOLDED  # noqa: E402
from training.fit import TrainingSettings  # noqa: E402


def changed_model_config(manifest: dict) -> dict:
    """The model config values a run changed from the seed's (dropout rates, say)."""
    seed = ModelConfig().to_dict()
    return {key: value for key, value in manifest["model_config"].items() if seed.get(key) != value}


def accuracy_block(manifest: dict) -> str:
    metrics, training = manifest["metrics"], manifest["training"]
    settings = training["settings"]
    return (
        f"Test accuracy of the shipped model: **{metrics['test_accuracy'] * 100:.2f} %** on "
        f"{training['data']['test_reviews']:,} test reviews (loss {metrics['test_loss']:.4f}), with the epoch chosen on "
        f"{training['data']['validation_reviews']:,} validation reviews carved from the training set: epoch "
        f"{metrics['best_epoch']} of {metrics['epochs_run']}, validation accuracy {metrics['validation_accuracy'] * 100:.2f} %"
        + (f"; then a fresh model was trained for those {refit['epochs']} epochs on all {refit['reviews']:,} training reviews. "
           if (refit := metrics.get("refit")) else ". ")
        + f"Training took {metrics['training_seconds'] / 60:.1f} minutes in all, {metrics['seconds_per_epoch']:.0f} s per "
        f"epoch of the validated run"
        + (f" after {start['seconds']:.0f} s of {start['method']}"
           if (start := metrics.get("pretraining")) else "")
        + f", on {training['machine']} (TensorFlow {training['library_versions']['tensorflow']}, "
        f"Keras {training['library_versions']['keras']}). Settings recorded in the manifest: "
        + ", ".join(f"{key} {value}" for key, value in {**changed_model_config(manifest), **settings}.items()) + "."
    )


def tuning_block(manifests: list[tuple[str, dict]]) -> str:
    lines = ["| run | trained (UTC) | settings | validation reviews | best validation accuracy | epoch | shipped weights | "
             "test accuracy |", "|---|---|---|---|---|---|---|---|"]
    for name, manifest in manifests:
        metrics, settings = manifest["metrics"], manifest["training"]["settings"]
        shown = ", ".join(f"{key} {value}" for key, value in {**changed_model_config(manifest), **settings}.items()
                          if key not in ("limit", "refit") and value not in (None, 0)  # 0: an option left off
                          and (key, value) != ("seed", TrainingSettings.seed))
        # Runs before validation blocks drew single reviews, so their validation shared films with training.
        blocks = manifest["training"]["data"].get("validation_block_ids")
        validation = f"blocks of {blocks} ids" if blocks else "single reviews"
        refit = metrics.get("refit")
        weights = f"refit on {refit['reviews']:,} reviews" if refit else "the validated epoch's"
        lines.append(f"| {name} | {manifest['created'][:16].replace('T', ' ')} | {shown} | {validation} | {metrics['validation_accuracy'] * 100:.2f} % | "
                     f"{metrics['best_epoch']} of {metrics['epochs_run']} | {weights} | {metrics['test_accuracy'] * 100:.2f} % |")
    return "\n".join(lines)


def parity_block(manifest: dict) -> str:
    from export.parity import format_table

    return format_table(manifest.get("parity", {}), manifest["artifacts"])


def bench_block(results: dict, repeat: dict | None = None) -> str:
    text = bench.render_markdown(results)
    targets = text[text.index("## Against the targets"):].split("\n", 2)[2].strip()
    machine = results["machine"]
    block = f"Measured by `python -m runtime.bench` on {machine['date'][:10]} ({machine['cpu']}, {machine['cores']} cores); " \
            f"all figures in [BENCHMARKS.md](BENCHMARKS.md).\n\n{targets}"
    if repeat:  # the same command run earlier on the same bundle: how far figures move between runs here
        runs = [bench.summary(repeat), bench.summary(results)]
        block += (f"\n\nRun to run on this shared machine, the same command on the same bundle "
                  f"(`benchmarks/repeat-run.json`, {repeat['machine']['date'][11:16]} UTC, then this run, "
                  f"{machine['date'][11:16]} UTC): best path "
                  + " and ".join(f"{run['best_p50_ms']:.3f} ms" for run in runs) + ", "
                  + " and ".join(f"{run['speedup_vs_keras_predict']:.0f}x" for run in runs) + " over Keras, "
                  + " and ".join(f"{run['speedup_vs_same_backend_full']:.2f}x" for run in runs)
                  + " over its full graph.")
    return block


def folding_block(probe: dict) -> str:
    median = str(probe["median_test_review_tokens"])
    builtin, folded = (probe["latency"][name][median]["p50_ms"] for name in (BUILTIN, FOLDED))
    return (f"Measured by `python scripts/folded_embedding.py` on {probe['machine']['date'][:10]} ({probe['machine']['cpu']}, "
            f"{probe['machine']['cores']} cores), {probe['rounds']} rounds round-robin: the folded graph agrees with the "
            f"cached graph to {probe['max_abs_difference_vs_cached']:.1e} on {probe['parity_reviews']:,} test reviews, "
            f"but a median review ({median} tokens) takes **{folded:.3f} ms** against {builtin:.3f} ms "
            f"(**{folded / builtin:.1f}x slower**), and its table is {probe['table_bytes'] / 2**20:.1f} MiB against "
            f"the embedding's {probe['embedding_bytes'] / 2**20:.1f} MiB.")


def sizes_block(sizes: dict) -> str:
    names = {"litert": "runtime + LiteRT", "onnx": "runtime + ONNX Runtime", "tflite-runtime": "runtime + tflite-runtime",
             "all": "training + export + tests (all extras)"}
    lines = ["| environment | installed size |", "|---|---|"]
    lines += [f"| `pip install \".[{extra}]\"` ({names[extra]}) | {mib} MiB |" for extra, mib in sizes["mib"].items()]
    lines.append(f"\nMeasured by `scripts/install_sizes.sh` on {sizes['date'][:10]} (Python {sizes['python']}, "
                 f"{sizes['machine']}): site-packages of a fresh virtual environment, pip itself excluded.")
    return "\n".join(lines)


def read_json(path: str) -> dict | None:
    """A results file under the repository root, or None if its command has not been run."""
    file = ROOT / path
    return json.loads(file.read_text()) if file.is_file() else None


def replace_block(readme: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- begin:{name} -->\n)(?:.*?\n)?(<!-- end:{name} -->)", re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no block {name}")
    return pattern.sub(lambda match: match.group(1) + body + "\n" + match.group(2), readme)


def main() -> int:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    manifest = bundle.read_manifest(ROOT / "models" / "imdb-lstm")
    readme = replace_block(readme, "accuracy", accuracy_block(manifest))
    readme = replace_block(readme, "parity", parity_block(manifest))
    tried = [(f"`docs/tuning/{path.name}`", json.loads(path.read_text()))
             for path in sorted((ROOT / "docs" / "tuning").glob("*.manifest.json"))]
    readme = replace_block(readme, "tuning", tuning_block([("shipped", manifest)] + tried))
    results = read_json("benchmarks/results.json")
    if results is not None:
        readme = replace_block(readme, "bench", bench_block(results, read_json("benchmarks/repeat-run.json")))
    for name, path, render in (("folding", "benchmarks/folded-embedding.json", folding_block),
                               ("sizes", "benchmarks/install_sizes.json", sizes_block)):
        if (found := read_json(path)) is not None:
            readme = replace_block(readme, name, render(found))
    readme_path.write_text(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
