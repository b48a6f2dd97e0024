"""Optuna or KerasTuner for `python -m training.tune`: what each costs and does here.

    python -m probes.tuner_choice          # about 3 minutes; writes probes/tuner-choice.json
    python -m probes.tuner_choice --data ../shared/data/aclImdb_labeled.tar.gz   # the data of the pipeline trial
    python -m probes.tuner_choice --results probes/tuner-choice.json --render    # only the table in docs/tuning.md

For each candidate (CANDIDATES, pinned) it makes a throw-away virtual environment layered on this
project's own install (every extra but `tune`: the site-packages of .venv seen through a folder of
links that leaves out whatever the project does not require), installs the candidate there with
pip, and measures:

- footprint: the distributions pip added and the MiB they take; and for each one that is not pure
  Python, whether PyPI has an aarch64 (Raspberry Pi) wheel of that version for CPython 3.11;
- overhead: seconds per trial of an objective that does nothing (60 trials), with the storage the
  tuner would use (Optuna: an SQLite file; KerasTuner: its project folder of JSON files), and the
  bytes that storage holds after them;
- resume: a study whose process SIGKILLs itself in the middle of its third trial, then the same
  command run again to 5 trials: which trials survive, the state the killed one is left in, and
  whether its parameters are run again; then once more with a budget of 6 (one trial more);
- pipeline: one trial that trains through training.fit's own functions (read_data with --limit,
  fit_model with the validation split, word2vec, the teacher and adversarial training at their
  defaults, a tiny model), the seconds the library adds around it, and the bytes it stores.

The trials run in subprocesses of the layered environment (`--worker`), so the figures do not depend
on whether .venv has the candidate installed. Nothing is asserted: the choice is in docs/tuning.md,
whose table `--render` rewrites from the JSON (between `<!-- begin:tuner-choice -->` and `<!-- end:... -->`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "probes" / "tuner-choice.json"
DOC = ROOT / "docs" / "tuning.md"
BEGIN, END = "<!-- begin:tuner-choice -->", "<!-- end:tuner-choice -->"
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"
CANDIDATES = {"optuna": "optuna==5.0.0", "keras-tuner": "keras-tuner==1.4.8"}
PROJECT = "imdb-sentiment-edge"
PROJECT_EXTRAS = {"train", "export", "litert", "onnx", "serve", "dev"}  # what `all` holds, less `tune`
OVERHEAD_TRIALS = 60
KILLED_TRIAL = 2  # 0-based: the third trial's process kills itself
RESUME_TRIALS = 5


def normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def project_closure() -> set[str]:
    """The distributions the project's extras (all but `tune`) require, transitively, as installed."""
    from packaging.requirements import Requirement

    wanted, seen = [(PROJECT, frozenset(PROJECT_EXTRAS))], set()
    while wanted:
        name, extras = wanted.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency this platform does not install
        for text in requires:
            requirement = Requirement(text)
            envs = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in envs):
                wanted.append((normalized(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen} | {"pip", "setuptools", "wheel"}


def project_view(folder: Path) -> Path:
    """A folder of links to .venv's site-packages entries that belong to the project's own install."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    keep = project_closure()
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for file in dist.files or []:
            top = file.parts[0]
            if top != "..":
                owners.setdefault(top, set()).add(normalized(dist.metadata["Name"]))
    folder.mkdir()
    for entry in site_packages.iterdir():
        names = owners.get(entry.name)
        if names is None or names & keep:
            (folder / entry.name).symlink_to(entry)
    return folder


def layered_environment(folder: Path) -> Path:
    """A new virtual environment that sees the project's install; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    view = project_view(folder / "view")
    (site / "zz_project.pth").write_text(f"import site; site.addsitedir({str(view)!r})\n")
    return python


def site_listing(python: Path) -> dict[str, int]:
    """Each file of the environment's own site-packages and its size."""
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    return {str(path.relative_to(site)): path.stat().st_size for path in site.rglob("*") if path.is_file()}


def aarch64_wheel(name: str, version: str, folder: Path) -> bool:
    """Whether PyPI has a wheel of this version that a 64-bit ARM Linux CPython 3.11 installs (glibc 2.28 or
    older: Raspberry Pi OS 12 has 2.36)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--platform", "manylinux_2_28_aarch64", "--python-version", "3.11", "-d", str(folder)]
    return subprocess.run([*command, f"{name}=={version}"], capture_output=True).returncode == 0


def footprint(python: Path, requirement: str, folder: Path) -> dict:
    """What `pip install REQUIREMENT` adds to an environment that holds the project's install."""
    before = site_listing(python)
    started = time.perf_counter()
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement], check=True)
    seconds = time.perf_counter() - started
    after = site_listing(python)
    added = {path: size for path, size in after.items() if path not in before}
    dists = {}
    for path in added:
        if path.endswith(".dist-info/METADATA"):
            name, version = path.split("/")[0][: -len(".dist-info")].rsplit("-", 1)
            wheel = (Path(python).parent.parent / "lib").glob(f"python*/site-packages/{path.split('/')[0]}/WHEEL")
            tags = [
                line.split(":", 1)[1].strip()
                for w in wheel
                for line in w.read_text().splitlines()
                if line.startswith("Tag:")
            ]
            pure = all(tag.endswith("-none-any") for tag in tags)
            dists[name] = {"version": version, "pure_python": pure}
            if not pure:
                dists[name]["aarch64_wheel"] = aarch64_wheel(name, version, folder / "aarch64")
    return {
        "packages_added": len(dists),
        "mib_added": round(sum(added.values()) / 2**20, 1),
        "install_seconds": round(seconds, 1),
        "distributions": dict(sorted(dists.items())),
    }


def run_worker(python: Path, *arguments: str) -> dict:
    """A worker subprocess's JSON (its last line), or its exit code if it died."""
    done = subprocess.run(
        [python, "-m", "probes.tuner_choice", "--worker", *arguments], cwd=ROOT, capture_output=True, text=True
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"returncode": done.returncode, "stderr_tail": done.stderr[-400:]}
    return json.loads(lines[-1])


def measure(library: str, folder: Path, data: str | None) -> dict:
    python = layered_environment(folder)
    result = {"requirement": CANDIDATES[library], "footprint": footprint(python, CANDIDATES[library], folder)}
    result["overhead"] = run_worker(python, library, "overhead", str(folder / "overhead"))
    killed = run_worker(python, library, "resume", str(folder / "resume"), "--kill")
    resumed = run_worker(python, library, "resume", str(folder / "resume"))
    extended = run_worker(python, library, "resume", str(folder / "resume"), "--trials", str(RESUME_TRIALS + 1))
    result["resume"] = {"killed_run": killed, "rerun": resumed, "rerun_with_one_more_trial": extended}
    result["pipeline"] = run_worker(
        python, library, "pipeline", str(folder / "pipeline"), *(["--data", data] if data else [])
    )
    return result


# The workers: the same three things with each library.


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def optuna_study(folder: Path, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{folder / 'study.db'}"
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize")


def optuna_trials(study) -> list[dict]:
    return [{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value} for t in study.trials]


def keras_tuner_of(folder: Path, run, max_trials: int):
    """A KerasTuner Tuner whose run_trial is `run(trial)`: the only way it runs a training it does not own."""
    import keras_tuner

    class Probe(keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            return run(trial)

    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("score", "max"), max_trials=max_trials, seed=1
    )
    return Probe(oracle=oracle, directory=str(folder), project_name="probe", overwrite=False)


def keras_tuner_trials(tuner) -> list[dict]:
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    return [
        {"number": t.trial_id, "state": t.status, "params": t.hyperparameters.values, "value": t.score} for t in trials
    ]


def kill_in_trial(number: int, folder: Path, kill: bool) -> None:
    """In the killed run, the process dies in the middle of the trial KILLED_TRIAL, as a kill -9 would do it."""
    if kill and number == KILLED_TRIAL:
        (folder / "killed").write_text(str(number))
        os.kill(os.getpid(), signal.SIGKILL)


def worker_overhead(library: str, folder: Path) -> dict:
    started = time.perf_counter()
    if library == "optuna":
        study = optuna_study(folder, "overhead")
        study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=OVERHEAD_TRIALS)
    else:
        tuner = keras_tuner_of(
            folder, lambda trial: {"score": trial.hyperparameters.Float("x", 0.0, 1.0)}, OVERHEAD_TRIALS
        )
        tuner.search(verbose=0)
    seconds = time.perf_counter() - started
    return {
        "trials": OVERHEAD_TRIALS,
        "ms_per_trial": round(1000 * seconds / OVERHEAD_TRIALS, 1),
        "storage_bytes": folder_bytes(folder),
    }


def worker_resume(library: str, folder: Path, kill: bool, total: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    if library == "optuna":
        study = optuna_study(folder, "resume")
        before = optuna_trials(study)
        done = sum(t["state"] == "COMPLETE" for t in before)

        def objective(trial):
            x = trial.suggest_float("x", 0.0, 1.0)
            kill_in_trial(trial.number, folder, kill)
            return x

        study.optimize(objective, n_trials=total - done)
        return {"found_on_start": before, "after": optuna_trials(study)}

    def run(trial):
        x = trial.hyperparameters.Float("x", 0.0, 1.0)
        kill_in_trial(int(trial.trial_id), folder, kill)
        return {"score": x}

    tuner = keras_tuner_of(folder, run, total)  # max_trials: the budget of the whole study
    before = keras_tuner_trials(tuner)
    tuner.search(verbose=0)
    return {"found_on_start": before, "after": keras_tuner_trials(tuner)}


def tiny_training(data_source: str | None, learning_rate: float) -> tuple[float, float]:
    """One trial of training.fit's own pipeline on a tiny model: (best validation accuracy, seconds)."""
    from dataclasses import replace

    from training import fit
    from training.settings import TrainingSettings

    started = time.perf_counter()
    settings = TrainingSettings(epochs=1, limit=200, learning_rate=learning_rate, word2vec_epochs=1)
    prepared = fit.read_data(data_source, settings, fit.sources.DataOptions(), None, 0)
    config = replace(
        fit.TRAINING_CONFIG, embedding_dim=8, lstm_units=8, sequence_length=100, labels=prepared.dataset.labels
    )
    fitted = fit.fit_model(prepared.fit, 1, settings, config, True, 0, prepared.validation)
    return max(fitted.history["val_accuracy"]), time.perf_counter() - started


def worker_pipeline(library: str, folder: Path, data_source: str | None) -> dict:
    from training.quiet import quiet

    quiet(False)
    import keras  # noqa: F401  loaded before the clock starts, as in a study's second trial

    inside = []

    def train(learning_rate: float) -> float:
        accuracy, seconds = tiny_training(data_source, learning_rate)
        inside.append(seconds)
        return accuracy

    started = time.perf_counter()
    if library == "optuna":
        study = optuna_study(folder, "pipeline")
        study.optimize(lambda trial: train(trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True)), n_trials=1)
        value = study.best_value
    else:
        tuner = keras_tuner_of(
            folder,
            lambda trial: {"score": train(trial.hyperparameters.Float("learning_rate", 1e-4, 3e-3, sampling="log"))},
            1,
        )
        tuner.search(verbose=0)
        value = tuner.oracle.get_best_trials(1)[0].score
    seconds = time.perf_counter() - started
    return {
        "ran_fit_pipeline": bool(inside),
        "validation_accuracy": round(value, 4),
        "training_seconds": round(inside[0], 2),
        "library_seconds": round(seconds - inside[0], 3),
        "storage_bytes": folder_bytes(folder),
    }


def worker(arguments: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("library", choices=sorted(CANDIDATES))
    parser.add_argument("part", choices=("overhead", "resume", "pipeline"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--trials", type=int, default=RESUME_TRIALS)
    parser.add_argument("--data")
    args = parser.parse_args(arguments)
    if args.part == "overhead":
        result = worker_overhead(args.library, args.folder)
    elif args.part == "resume":
        result = worker_resume(args.library, args.folder, args.kill, args.trials)
    else:
        result = worker_pipeline(args.library, args.folder, args.data)
    print(json.dumps(result))


def resume_summary(resume: dict) -> str:
    """What became of the trial killed mid-run, and whether a budget of one more trial ran one more."""
    found = resume["rerun"]["found_on_start"]
    killed = next(t for t in found if str(t["number"]) == str(KILLED_TRIAL))
    after = {str(t["number"]): t for t in resume["rerun"]["after"]}
    rerun = after[str(KILLED_TRIAL)]
    kept = sum(t["state"].startswith("COMPLETE") for t in found)
    fate = (
        "re-run with its parameters, then complete"
        if rerun["state"].startswith("COMPLETE") and rerun["params"] == killed["params"]
        else f"left {rerun['state']}, its parameters not run again"
    )
    done = lambda trials: sum(t["state"].startswith("COMPLETE") for t in trials)  # noqa: E731
    extended = done(resume["rerun_with_one_more_trial"]["after"]) - done(resume["rerun"]["after"])
    return f"{kept} finished trials kept; the killed one found {killed['state']}, {fate}; budget +1 ran {extended} more"


def render(results: dict) -> str:
    rows = ["| | " + " | ".join(results["candidates"]) + " |", "|---|" + "---|" * len(results["candidates"])]
    cells = {
        "install (pip, beside the project's own)": lambda c: (
            f"{c['footprint']['packages_added']} packages, {c['footprint']['mib_added']} MiB"
        ),
        "compiled packages, aarch64 wheel": lambda c: (
            ", ".join(
                f"{name} {'yes' if d['aarch64_wheel'] else 'NO'}"
                for name, d in c["footprint"]["distributions"].items()
                if not d["pure_python"]
            )
            or "none"
        ),
        f"overhead a trial ({OVERHEAD_TRIALS} empty trials)": lambda c: f"{c['overhead']['ms_per_trial']} ms",
        "storage after them": lambda c: f"{c['overhead']['storage_bytes'] / 1024:.0f} KiB",
        "one trial of training.fit's pipeline": lambda c: (
            f"ran: {c['pipeline']['ran_fit_pipeline']}, "
            f"library {c['pipeline']['library_seconds']} s of {c['pipeline']['training_seconds']} s training"
        ),
        "killed in trial 3 of 5, run again": lambda c: resume_summary(c["resume"]),
    }
    for label, cell in cells.items():
        rows.append(f"| {label} | " + " | ".join(cell(c) for c in results["candidates"].values()) + " |")
    return f"Measured {results['measured']} on {results['machine']}:\n\n" + "\n".join(rows)


def rewrite_doc(table: str) -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=os.environ.get("IMDB_DATA", str(SHARED_ARCHIVE)), help="the pipeline trial's data"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--results", type=Path, help="render these results instead of measuring")
    parser.add_argument("--render", action="store_true", help="rewrite the table in docs/tuning.md")
    args = parser.parse_args(argv)
    if args.results:
        results = json.loads(args.results.read_text())
        print(render(results))
        if args.render:
            rewrite_doc(render(results))
        return 0
    results = {
        "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "candidates": {},
    }
    for library in CANDIDATES:
        with tempfile.TemporaryDirectory(prefix=f"tuner-{library}-") as folder:
            print(f"measuring {library}", file=sys.stderr, flush=True)
            results["candidates"][library] = measure(library, Path(folder), args.data)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    if args.render:
        rewrite_doc(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
