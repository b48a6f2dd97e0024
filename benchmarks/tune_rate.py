"""Trials per hour with 1, 2 and 3 local tuner workers: `python -m benchmarks.tune_rate`.

From the repository root, with the tune extra, on a machine doing nothing else (one training at a
time: every worker is one):

    python -m benchmarks.tune_rate --data ../shared/data/aclImdb_labeled.tar.gz
    python scripts/update_readme.py      # renders benchmarks/tune-rate.json into docs/tuning.md

For each number of workers, one `python -m training.tune --workers N` on a new Optuna journal file
(WORK/N-workers.journal, its trial folders in WORK/N-workers) runs the same small `--limit` search to
the same budget of trials; its wall time, start to exit, gives the trials per hour, and the study's
own trial times (first trial started to last ended) the rate once the workers have loaded. Every
trial trains one fixed setting (the search space is one point, the pruner off), so the workers'
trials are equal work and the rates compare. Anything after `--` is passed to training.tune (a tiny
search for a test). Timings are recorded, never asserted. Exit status: 0 measured and written, 1 a
measurement failed or its folder exists (one `error:` line), 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import bench
from runtime import bundle

RESULTS = bench.HERE / "tune-rate.json"
STUDY = "rate"
# One point of the search space, a small --limit run's: every trial is the same work.
SEARCH = (
    "--limit", "2000", "--epochs", "2", "--layers", "1", "--bidirectional", "false", "--attention", "false",
    "--lstm-units", "32", "--embedding-dim", "64", "--learning-rate", "1e-3", "--dropout", "0.5",
    "--adversarial", "0", "--distill", "0", "--batch-size", "32", "--word2vec-epochs", "0",
    "--pruner", "none", "--quiet",
)  # fmt: skip


class RateError(Exception):
    """A measurement that cannot be taken as asked: one `error:` line, exit 1."""


def worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected worker counts such as 1,2,3, got {text!r}") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"expected distinct worker counts of 1 or more, got {text!r}")
    return counts


def tune_command(data: str | None, work: Path, workers: int, trials: int, extra: list[str]) -> list[str]:
    """The training.tune command of one measurement (the same for each count but --workers and its files)."""
    name = f"{workers}-workers"
    command = [sys.executable, "-m", "training.tune", *(["--data", data] if data else [])]
    command += ["--output", str(work / name), "--storage", f"journal:{work / name}.journal", "--study", STUDY]
    return [*command, "--workers", str(workers), "--trials", str(trials), *SEARCH, *extra]


def measure(data: str | None, work: Path, workers: int, trials: int, extra: list[str]) -> dict:
    """Run one measurement to its budget; its wall time and the study's own trial times."""
    command = tune_command(data, work, workers, trials, extra)
    if os.path.lexists(work / f"{workers}-workers") or os.path.lexists(work / f"{workers}-workers.journal"):
        raise RateError(f"{work / f'{workers}-workers'} exists: give a new --work folder (each count a new study)")
    print(f"measuring {workers} worker(s): {shlex.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    finished = subprocess.run(command, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if finished.returncode != 0:
        raise RateError(f"training.tune with {workers} worker(s) exited {finished.returncode}")
    return row(workers, seconds, study_trials(work / f"{workers}-workers.journal"))


def study_trials(journal: Path) -> list:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)


def row(workers: int, seconds: float, trials: list) -> dict:
    """One count's figures: trials per hour by wall time and between the study's first and last trial."""
    done = [trial for trial in trials if trial.state.name == "COMPLETE"]
    first = min(trial.datetime_start for trial in done)
    last = max(trial.datetime_complete for trial in done)
    in_trials = (last - first).total_seconds()
    return {
        "workers": workers,
        "complete_trials": len(done),
        "wall_seconds": round(seconds, 1),
        "trials_per_hour": round(len(done) * 3600 / seconds, 2),
        "trial_seconds_median": round(statistics.median(trial.user_attrs["seconds"] for trial in done), 1),
        "seconds_first_start_to_last_end": round(in_trials, 1),
        "trials_per_hour_once_loaded": round(len(done) * 3600 / in_trials, 2) if in_trials > 0 else None,
        "processes_seen": len({trial.user_attrs.get("worker") for trial in done}),
    }


def run(data: str | None, work: Path, counts: tuple[int, ...], trials: int, extra: list[str]) -> dict:
    rows = []
    load = os.getloadavg()
    for workers in counts:
        rows.append(measure(data, work, workers, trials, extra))
    return {
        "machine": bench.machine(),
        "load_average_before": [round(value, 2) for value in load],  # a busy machine measures its contention
        "data": Path(data).name if data else None,
        "trials": trials,
        "command": "python -m training.tune --data DATA --output WORK/N-workers --storage journal:WORK/N-workers.journal "
        f"--study {STUDY} --workers N --trials {trials} " + shlex.join([*SEARCH, *extra]),
        "rows": rows,
    }


def table(results: dict) -> str:
    """docs/tuning.md's block: one row a worker count, with the machine it was taken on."""
    machine, rows = results["machine"], results["rows"]
    base = rows[0]["trials_per_hour"]
    lines = [
        f"Measured by `python -m benchmarks.tune_rate` on {machine['date'][:10]}: {machine['cpu']}, "
        f"{machine['cores']} cores, load average {results['load_average_before'][0]:g} before it started; "
        f"{results['trials']} trials of one fixed setting on {results['data'] or 'IMDB'}, each count a new "
        "journal-file study.",
        "",
        "| workers | trials | wall time | trials per hour | vs 1 worker | once loaded (per hour) | median trial |",
        "|---|---|---|---|---|---|---|",
    ]
    for figures in rows:
        loaded = figures["trials_per_hour_once_loaded"]
        lines.append(
            f"| {figures['workers']} | {figures['complete_trials']} | {figures['wall_seconds'] / 60:.1f} min "
            f"| {figures['trials_per_hour']:.1f} | {figures['trials_per_hour'] / base:.2f}x "
            f"| {'' if loaded is None else f'{loaded:.1f}'} | {figures['trial_seconds_median']:.0f} s |"
        )
    lines += ["", f"The command, with `--workers N`: `{results['command']}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tune_rate", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("IMDB_DATA"), help="the labelled texts (default: $IMDB_DATA)")
    parser.add_argument("--workers", type=worker_counts, default=(1, 2, 3), help="the counts (default: 1,2,3)")
    parser.add_argument("--trials", type=int, default=12, help="each study's budget (default: %(default)s)")
    parser.add_argument(
        "--work", type=Path, default=Path("runs/tune-rate"), help="a new folder for the studies (default: %(default)s)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON (default: %(default)s)")
    args = parser.parse_args(own)
    if args.trials < 1:
        parser.error(f"--trials must be 1 or more, got {args.trials}")
    try:
        args.work.mkdir(parents=True, exist_ok=True)
        results = run(args.data, args.work, args.workers, args.trials, extra)
        bundle.write_json(args.output, results)
    except (RateError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
