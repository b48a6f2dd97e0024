#!/usr/bin/env python3
"""Imitate a 64-bit Raspberry Pi OS on an x86_64 Debian machine and prove the device runtime works there.

    sudo python3 scripts/pi_emulation.py [--bundle models/imdb-lstm] [--work /tmp/pi-emulation]

Steps, each cached in the work folder (never in the repo), so a second run only classifies:
  1. qemu-aarch64-static 10 from Debian bookworm-backports, unpacked with `dpkg -x` (the 7.2 of
     bookworm crashes on LiteRT and ONNX Runtime); the system's apt setup is not touched.
  2. An arm64 Debian bookworm root (what Raspberry Pi OS 64-bit is built on) from
     `debootstrap --foreign`, with every fetched .deb unpacked so that its Python 3.11 runs.
  3. aarch64 wheels of numpy, ai-edge-litert and onnxruntime for Python 3.11, installed into a
     folder that the emulated Python gets on its PYTHONPATH, with the repo root.
  4. Which aarch64 wheels pip resolves for Python 3.11, 3.12 and 3.13.
  5. scripts/pi_check.py classifies the reviews of scripts/pi_reviews.txt with every artifact of
     the bundle, once under the host's Python and once under the emulated aarch64 Python; every
     probability must agree within --atol.
Writes results.json and summary.txt into the work folder (and, with --record, the summary to
benchmarks/pi-emulation-CPU.txt for docs/pi-emulation.md); exits 1 if a check fails, 2 if a step
cannot run. Emulated timings mean nothing, so none are reported for classification.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORDS = REPO / "benchmarks"  # runs of record, with --record: pi-emulation-<cpu>.txt
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # Raspberry Pi OS 64-bit (2023-) is Debian bookworm for arm64
DEVICE_PYTHON = "3.11"  # bookworm's python3
# pip's --platform takes exact tags, and onnxruntime 1.32 (manylinux_2_28), tflite-runtime 2.14
# (manylinux_2_34) and protobuf (manylinux2014) each use a different one, so name every tag that
# a glibc 2.36 system (bookworm) accepts, as pip on the device itself would.
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + ["manylinux2014_aarch64"]
# The HTTP server's packages, as pyproject.toml's serve extra (which every device extra pulls in) names them.
SERVE_PACKAGES = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
DEVICE_PACKAGES = ["numpy", "ai-edge-litert", "onnxruntime", *SERVE_PACKAGES]
RESOLUTION_CHECKS = (
    [(python, ["numpy", "ai-edge-litert", *SERVE_PACKAGES]) for python in ("3.11", "3.12", "3.13")]
    + [(python, ["numpy", "onnxruntime", *SERVE_PACKAGES]) for python in ("3.11", "3.12", "3.13")]
    + [("3.11", ["tflite-runtime==2.14.0", "numpy<2"])]  # its last release; cp311 wheels only
)
# Every artifact the device may load: (backend, precision, graph), as runtime.bundle names them;
# "steps" is explain's per-step graph, compared at every word of every review.
ARTIFACTS = [
    (backend, precision, graph)
    for backend in ("tflite", "onnx")
    for precision in ("float32", "int8")
    for graph in ("cached", "full", "steps")
]

summary_lines: list[str] = []


class StepError(Exception):
    """A setup step that could not run (no network, a missing tool, a failed command)."""


def say(line: str = "") -> None:
    line = line.rstrip()
    print(line, flush=True)
    summary_lines.append(line)


def run(command: list, log: Path, env: dict | None = None, cwd: Path | None = None) -> str:
    """Run a command with its output in `log`; raise StepError with the log's tail if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(map(str, command)) + "\n")
        handle.flush()
        try:
            completed = subprocess.run(
                [str(part) for part in command], stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd
            )
        except FileNotFoundError:
            raise StepError(f"{command[0]}: not found") from None
    output = log.read_text(encoding="utf-8", errors="replace")
    if completed.returncode != 0:
        tail = "\n".join("    " + line for line in output.splitlines()[-12:])
        raise StepError(f"{Path(str(command[0])).name} exited {completed.returncode} (log: {log}):\n{tail}")
    return output


def require_root(step: str) -> None:
    if os.geteuid() != 0:
        raise StepError(f"{step} needs root (apt-get, debootstrap): run this script with sudo")


def timed(name: str, steps: dict, function, *args):
    start = time.monotonic()
    value, cached = function(*args)
    steps[name] = {"seconds": round(time.monotonic() - start, 1), "cached": cached}
    say(f"  {name:<14} {'cached' if cached else 'done'} in {steps[name]['seconds']} s")
    return value


# --- step 1: qemu ------------------------------------------------------------------------------


def private_apt(work: Path, mirror: str) -> list[str]:
    """apt options for a private sources list and state in the work folder, with backports."""
    folder = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "sources.list").write_text(f"deb {mirror} {SUITE}-backports main\n", encoding="utf-8")
    return [
        "-o",
        f"Dir::Etc::SourceList={folder / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={folder / 'lists'}",
        "-o",
        f"Dir::Cache={folder / 'cache'}",
        "-o",
        "APT::Sandbox::User=root",
    ]  # apt's download user cannot write into the work folder


def qemu_version(qemu: Path) -> str:
    output = subprocess.run([str(qemu), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"version (\d+)\.(\d+)\S*", output)
    if not match:
        raise StepError(f"{qemu} --version printed no version: {output!r}")
    if int(match.group(1)) < 10:
        raise StepError(f"{qemu} is qemu {match.group(0)}; LiteRT and onnxruntime need 10 or newer")
    return match.group(0).removeprefix("version ")


def fetch_qemu(work: Path, mirror: str) -> tuple[Path, bool]:
    qemu = work / "qemu" / "usr" / "bin" / "qemu-aarch64-static"
    if qemu.exists():
        return qemu, True
    require_root("fetching qemu")
    options = private_apt(work, mirror)
    try:
        # apt-get update only warns about an index it could not fetch, unless told otherwise.
        run(["apt-get", *options, "update", "--error-on=any"], work / "logs" / "apt-update.log")
    except StepError as error:
        raise StepError(f"cannot read {mirror} {SUITE}-backports (no network to the Debian mirror?)\n{error}")
    debs = work / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    # In qemu 10 the static emulators live in qemu-user; qemu-user-static only adds the *-static names.
    run(
        ["apt-get", *options, "download", f"qemu-user/{SUITE}-backports", f"qemu-user-static/{SUITE}-backports"],
        work / "logs" / "apt-download.log",
        cwd=debs,
    )
    unpacked = work / "qemu.tmp"
    shutil.rmtree(unpacked, ignore_errors=True)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg", "-x", deb, unpacked], work / "logs" / "dpkg-x-qemu.log")
    qemu_version(unpacked / "usr" / "bin" / "qemu-aarch64-static")
    unpacked.rename(work / "qemu")
    return qemu, False


# --- step 2: the arm64 Debian root -------------------------------------------------------------


def emulated_python(qemu: Path, root: Path, cpu: str) -> list:
    return [qemu, "-cpu", cpu, "-L", root, root / "usr" / "bin" / f"python{DEVICE_PYTHON}"]


def debootstrap_command(work: Path) -> str:
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found:
        return found
    log = work / "logs" / "apt-install-debootstrap.log"
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"], log)
    except StepError:  # stale package lists on a fresh machine
        run(["apt-get", "update"], log)
        run(["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"], log)
    return shutil.which("debootstrap", path="/usr/sbin:/usr/bin:/sbin:/bin")


def build_root(work: Path, mirror: str, qemu: Path, cpu: str) -> tuple[Path, bool]:
    root = work / "root"
    if (root / ".pi-emulation-ready").exists():
        return root, True
    require_root("debootstrap")
    debootstrap = debootstrap_command(work)
    building = work / "root.tmp"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    # --foreign only downloads and unpacks the essential packages: the second stage would need to
    # run arm64 maintainer scripts. The other .debs (python3.11 and its libraries) wait in apt's cache.
    try:
        run(
            [
                debootstrap,
                "--foreign",
                "--arch=arm64",
                "--variant=minbase",
                f"--include=python{DEVICE_PYTHON}",
                SUITE,
                building,
                mirror,
            ],
            work / "logs" / "debootstrap.log",
        )
    except StepError as error:
        raise StepError(f"debootstrap could not build an arm64 {SUITE} root from {mirror}\n{error}")
    # Unpacking every fetched .deb is what configuring would have put on disk, minus the scripts.
    for deb in sorted((building / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        run(["dpkg", "-x", deb, building], work / "logs" / "dpkg-x-root.log")
    run(
        [*emulated_python(qemu, building, cpu), "-c", "import ctypes, ssl, platform; print(platform.machine())"],
        work / "logs" / "root-smoke-test.log",
    )
    building.rename(root)
    (root / ".pi-emulation-ready").write_text("debootstrap --foreign + dpkg -x of every .deb\n")
    return root, False


# --- steps 3 and 4: aarch64 wheels ------------------------------------------------------------


def platform_options(python: str) -> list[str]:
    return [option for tag in PLATFORMS for option in ("--platform", tag)] + [
        "--python-version",
        python,
        "--only-binary=:all:",
    ]


def install_wheels(work: Path, host_python: str) -> tuple[Path, bool]:
    target = work / "site-packages"
    if (target / ".pi-emulation-ready").exists():
        return target, True
    wheels = work / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    pip = [host_python, "-m", "pip", "--disable-pip-version-check"]
    try:
        run(
            [*pip, "download", "--dest", wheels, *platform_options(DEVICE_PYTHON), *DEVICE_PACKAGES],
            work / "logs" / "pip-download.log",
        )
    except StepError as error:
        raise StepError(f"cannot download aarch64 wheels for Python {DEVICE_PYTHON} (no network to PyPI?)\n{error}")
    building = work / "site-packages.tmp"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    # pip installs foreign wheels only into a --target folder, and only what it was handed.
    run(
        [
            *pip,
            "install",
            "--no-index",
            "--no-deps",
            "--target",
            building,
            *platform_options(DEVICE_PYTHON),
            *sorted(wheels.glob("*.whl")),
        ],
        work / "logs" / "pip-install.log",
    )
    building.rename(target)
    (target / ".pi-emulation-ready").write_text("\n".join(sorted(p.name for p in wheels.glob("*.whl"))) + "\n")
    return target, False


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_resolution(work: Path, host_python: str) -> tuple[list[dict], bool]:
    """For each (Python, requirements): the wheel pip picks for each requirement, or pip's error."""
    results = []
    for python, requirements in RESOLUTION_CHECKS:
        names = [canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group(0)) for requirement in requirements]
        folder = work / "resolve" / f"py{python}-{'+'.join(names)}"
        shutil.rmtree(folder, ignore_errors=True)  # a fresh folder shows only what this resolution picked
        record = {"python": python, "requirements": requirements, "ok": True, "wheels": {}}
        try:
            run(
                [
                    host_python,
                    "-m",
                    "pip",
                    "--disable-pip-version-check",
                    "download",
                    "--dest",
                    folder,
                    *platform_options(python),
                    *requirements,
                ],
                folder.with_suffix(".log"),
            )
        except StepError as error:
            errors = [line.strip() for line in str(error).splitlines() if "ERROR" in line]
            record.update(ok=False, error=" ".join(errors) or str(error).splitlines()[0])
        for wheel in sorted(folder.glob("*.whl")):
            name, version = wheel.name.split("-")[:2]
            if canonical(name) in names:
                record["wheels"][canonical(name)] = {"version": version, "file": wheel.name}
        results.append(record)
    return results, False


# --- step 5: classify on both sides and compare ------------------------------------------------


def classify(command: list, env: dict, bundle: Path, reviews: Path, out: Path, log: Path) -> dict:
    out.unlink(missing_ok=True)
    run(
        [*command, REPO / "scripts" / "pi_check.py", "--bundle", bundle, "--reviews", reviews, "--out", out],
        log,
        env=env,
    )
    return json.loads(out.read_text(encoding="utf-8"))


def max_abs_diff(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b))


def compare(host: dict, device: dict, atol: float) -> list[dict]:
    def by_key(result):
        return {(run["backend"], run["precision"], run["graph"]): run for run in result["runs"]}

    def off_float32(runs, key):
        """How far an int8 artifact is from its float32 twin on the same machine: which side drifts."""
        int8, float32 = runs[key], runs.get((key[0], "float32", key[2]), {})
        if key[1] != "int8" or "probabilities" not in float32:
            return None
        return max_abs_diff(int8["probabilities"], float32["probabilities"])

    host_runs, device_runs = by_key(host), by_key(device)
    rows = []
    for key in ARTIFACTS:
        row = {"backend": key[0], "precision": key[1], "graph": key[2]}
        a, b = host_runs.get(key), device_runs.get(key)
        problems = [
            f"{side}: {run['error'] if run else 'not run (backend not installed)'}"
            for side, run in (("x86_64", a), ("aarch64", b))
            if run is None or "error" in run
        ]
        if problems:
            row.update(passed=False, error="; ".join(problems))
        else:
            diff = max_abs_diff(a["probabilities"], b["probabilities"])
            labels_equal = all(
                row_a.index(max(row_a)) == row_b.index(max(row_b))
                for row_a, row_b in zip(a["probabilities"], b["probabilities"])
            )
            row.update(
                interpreter=b["interpreter"],
                max_abs_diff=diff,
                labels_equal=labels_equal,
                x86_64_vs_float32=off_float32(host_runs, key),
                aarch64_vs_float32=off_float32(device_runs, key),
                passed=diff <= atol and labels_equal and len(a["probabilities"]) == len(b["probabilities"]),
            )
        rows.append(row)
    return rows


def clean_env(pythonpath: list[Path]) -> dict:
    # Only what Python needs: the host's OPENBLAS_CORETYPE names an x86 core, and bytecode
    # written by the emulated Python would land in the repo's __pycache__ folders.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(map(str, pythonpath)),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }


# --- the report --------------------------------------------------------------------------------


def host_description() -> str:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.machine()} {platform.platform()}, {os.cpu_count()} cores {model}".strip()


def print_resolution(resolution: list[dict]) -> None:
    say("Wheels pip resolves for aarch64 (glibc <= 2.36):")
    for record in resolution:
        say(f"  Python {record['python']}  {' + '.join(record['requirements'])}: {'ok' if record['ok'] else 'FAILED'}")
        for name, wheel in record["wheels"].items():
            say(f"      {name + ' ' + wheel['version']:<24}{wheel['file']}")
        if not record["ok"]:
            say(f"      {record['error']}")


def print_parity(rows: list[dict], atol: float) -> None:
    say(f"Parity, aarch64 (emulated) vs x86_64 (host), tolerance {atol:g}:")
    say(
        f"  {'backend':<8}{'precision':<10}{'graph':<8}{'max abs diff':>13}  {'labels equal':<13}{'result':<8}"
        f"int8 vs float32 on x86_64 / aarch64"
    )
    for row in rows:
        start = f"  {row['backend']:<8}{row['precision']:<10}{row['graph']:<8}"
        if "error" in row:
            say(f"{start}{'-':>13}  {'-':<13}FAILED: {row['error']}")
            continue
        drift = ""
        if row["x86_64_vs_float32"] is not None:
            drift = f"{row['x86_64_vs_float32']:.3g} / {row['aarch64_vs_float32']:.3g}"
        say(
            f"{start}{row['max_abs_diff']:>13.3g}  {str(row['labels_equal']):<13}"
            f"{'ok' if row['passed'] else 'FAILED':<8}{drift}"
        )


def print_predictions(device: dict, texts: list[str]) -> None:
    run = next((run for run in device["runs"] if "probabilities" in run), None)
    if run is None:
        return
    say(f"Predictions on aarch64 ({run['backend']} {run['precision']} {run['graph']}):")
    for text, probabilities in zip(texts, run["probabilities"]):
        best = probabilities.index(max(probabilities))
        say(f"  {device['labels'][best]:<9}{probabilities[best]:.3f}  {text[:60]}...")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle",
        type=Path,
        default=REPO / "models" / "imdb-lstm",
        help="the model bundle (default: models/imdb-lstm in this repo)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("PI_EMULATION_DIR", "/tmp/pi-emulation")),
        help="the cache and output folder (default: $PI_EMULATION_DIR or /tmp/pi-emulation)",
    )
    parser.add_argument("--results", type=Path, help="the JSON results file (default: WORK/results.json)")
    parser.add_argument("--reviews", type=Path, default=REPO / "scripts" / "pi_reviews.txt")
    parser.add_argument(
        "--host-python",
        default=str(REPO / ".venv" / "bin" / "python")
        if (REPO / ".venv" / "bin" / "python").exists()
        else sys.executable,
        help="the x86_64 Python with the runtime's dependencies (default: the repo's .venv)",
    )
    parser.add_argument(
        "--cpu", default="cortex-a72", help="the emulated CPU: cortex-a72 is a Raspberry Pi 4, cortex-a76 a Pi 5"
    )
    parser.add_argument("--mirror", default=MIRROR)
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument(
        "--record",
        action="store_true",
        help="also copy the summary to benchmarks/pi-emulation-CPU.txt, from which "
        "scripts/update_readme.py fills docs/pi-emulation.md",
    )
    args = parser.parse_args(argv)

    work, bundle = args.work.resolve(), args.bundle.resolve()
    if work == REPO or REPO in work.parents:
        parser.error(f"--work {work} is inside the repo; use a folder outside it")
    if not (bundle / "manifest.json").is_file():
        parser.error(f"--bundle {bundle} has no manifest.json; export a bundle first or pass another one")
    work.mkdir(parents=True, exist_ok=True)
    results_path = args.results or work / "results.json"
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": host_description(),
        "bundle": str(bundle),
        "work": str(work),
        "cpu": args.cpu,
        "atol": args.atol,
        "steps": {},
        "passed": False,
    }
    started = time.monotonic()
    say(f"Raspberry Pi emulation, {results['date']}")
    say(f"  host:   {results['host']}")
    say(f"  bundle: {bundle}")
    try:
        steps = results["steps"]
        say("Steps:")
        qemu = timed("qemu", steps, fetch_qemu, work, args.mirror)
        results["qemu"] = qemu_version(qemu)
        root = timed("debian-root", steps, build_root, work, args.mirror, qemu, args.cpu)
        site = timed("wheels", steps, install_wheels, work, args.host_python)
        resolution = timed("resolution", steps, check_resolution, work, args.host_python)
        results["resolution"] = resolution

        texts = [
            line.strip()
            for line in args.reviews.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        start = time.monotonic()
        host = classify(
            [args.host_python],
            clean_env([REPO]),
            bundle,
            args.reviews,
            work / "host.json",
            work / "logs" / "classify-host.log",
        )
        device = classify(
            emulated_python(qemu, root, args.cpu),
            clean_env([site, REPO]),
            bundle,
            args.reviews,
            work / "device.json",
            work / "logs" / "classify-device.log",
        )
        steps["classify"] = {"seconds": round(time.monotonic() - start, 1), "cached": False}
        say(f"  {'classify':<14} done in {steps['classify']['seconds']} s (emulated: not a benchmark)")
        results.update(host_run=host, device_run=device)
        parity = compare(host, device, args.atol)
        results["parity"] = parity

        say()
        say(f"Bundle:          {device['bundle']['name']}, created {device['bundle']['created']}")
        say(
            f"Emulated device: {device['machine']}, Python {device['python']}, qemu {results['qemu']} -cpu {args.cpu}, "
            f"Debian {SUITE} root"
        )
        say("  packages: " + ", ".join(f"{k} {v}" for k, v in device["packages"].items()))
        say(f"Host:            {host['machine']}, Python {host['python']}")
        say("  packages: " + ", ".join(f"{k} {v}" for k, v in host["packages"].items()))
        say()
        print_resolution(resolution)
        say()
        print_parity(parity, args.atol)
        say()
        print_predictions(device, texts)
        say()
        checks = {
            "platform.machine() is aarch64 in the emulated Python": device["machine"] == "aarch64",
            "tensorflow not imported (aarch64)": not device["tensorflow_imported"],
            "tensorflow not imported (x86_64)": not host["tensorflow_imported"],
            "the HTTP server's modules import (aarch64)": device["server_imports"] is True,
            f"all {len(ARTIFACTS)} artifacts agree within {args.atol:g}": all(row["passed"] for row in parity),
            "every wheel resolution succeeded": all(record["ok"] for record in resolution),
        }
        results["checks"] = checks
        for name, passed in checks.items():
            say(f"  [{'ok' if passed else 'FAILED'}] {name}")
        results["passed"] = all(checks.values())
        code = 0 if results["passed"] else 1
    except StepError as error:
        results["error"] = str(error)
        say(f"error: {error}")
        code = 2
    results["seconds"] = round(time.monotonic() - started, 1)
    say(
        f"{'PASSED' if results['passed'] else 'FAILED'} in {results['seconds']} s; "
        f"results: {results_path}, summary: {work / 'summary.txt'}"
    )
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (work / "summary.txt").write_text("\n".join(summary_lines) + "\n", encoding="utf-8")
    if args.record:
        (RECORDS / f"pi-emulation-{args.cpu}.txt").write_text("\n".join(summary_lines) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
