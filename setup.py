"""The wheel carries the shipped model: `build_py` copies the device part of models/imdb-lstm
into runtime/models/imdb-lstm inside the wheel (never into the source tree), so an installed
`imdb-sentiment` works from any folder. Everything else about the project is in pyproject.toml.

`shipped_files()` is the one list of the model files that ship. Both distributions follow it: the
wheel copies them, and `build_py.get_source_files()` names them, which is how setuptools decides
what the source distribution carries (there is no MANIFEST.in), so `python -m build`, which builds
the sdist and then the wheel from it, finds them there.

Only the cached graphs go in (both interpreters, float32 and int8: about 13 MB instead of 26):
they are the fast path and the default. `explain` needs a per-step graph of the classifier's
precision, so one goes in for each interpreter: the float32 one (5.2 MB each), which explains the
default float32 classifier. It is the smallest that passes the float32 per-step parity (1e-4 at
every step, the float32 gate; the manifest's parity entry has what was measured): the int8 one (1.3 MB) misses it by far
(its steps differ from Keras by up to 0.45; it passes only int8's label-agreement criteria) and
stays in the repository's bundle, for an int8 classifier's explain there. The manifest copied
with them lists just those files, and says which artifacts were left out and where they are, so
the runtime can say so too. The Keras model, history and plots stay out: a device never reads
them. The explain page (runtime/explain.html, .js, .css) and the systemd unit (runtime/imdb-sentiment.service,
printed by `python -m runtime.service`) go in as package data.

Builds happen in a temporary folder (`build_base`), not in `build/` of the clone: a `build/`
folder there would make `python -m build` run it instead of the build tool when the tool is not
installed ("'build' is a package and cannot be directly executed"), and files left in it by an
earlier build could reach the next wheel.

This file uses only the standard library, because the build runs in an isolated environment
without numpy.
"""

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build import build
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
MODEL = Path("models") / "imdb-lstm"  # the shipped bundle, relative to this file
PACKAGED = Path("runtime") / "models" / "imdb-lstm"  # where the wheel carries its device part
# (graph, precision) of the artifacts the wheel carries, for each interpreter.
SHIPPED = {("cached", "float32"), ("cached", "int8"), ("steps", "float32")}


def device_manifest(manifest: dict) -> tuple[dict, list[str]]:
    """The manifest of the packaged copy, and the files it names."""
    kept = {
        key: record
        for key, record in manifest["artifacts"].items()
        if record["format"] != "keras" and (record.get("graph"), record.get("precision")) in SHIPPED
    }
    omitted = sorted(key for key in manifest["artifacts"] if key not in kept)
    packaged = {key: value for key, value in manifest.items() if key != "reports"}
    packaged["artifacts"] = kept
    packaged["parity"] = {key: value for key, value in manifest.get("parity", {}).items() if key in kept}
    packaged["packaged"] = {
        "omitted_artifacts": omitted,
        "note": "the installed package carries the cached graphs and the float32 per-step graphs (explain) only; "
        "the others are in models/imdb-lstm of the source repository (pass its folder as --model / "
        "from_bundle(folder))",
    }
    files = [
        manifest["tokenizer"]["vocabulary"]["file"],
        manifest["padding_states"]["file"],
        *(record["file"] for record in kept.values()),
    ]
    return packaged, files


def read_manifest(root: Path = HERE) -> dict:
    return json.loads((root / MODEL / "manifest.json").read_text(encoding="utf-8"))


def shipped_files(root: Path = HERE) -> list[str]:
    """The files of models/imdb-lstm that ship, as paths relative to `root`: the manifest and the
    files its packaged copy names. The sdist carries them and the wheel's build step reads them."""
    _, files = device_manifest(read_manifest(root))
    return [(MODEL / name).as_posix() for name in ["manifest.json", *files]]


class BuildWithModel(build_py):
    def get_source_files(self):
        return super().get_source_files() + shipped_files()

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads models/imdb-lstm in place
            return
        packaged, files = device_manifest(read_manifest())
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in files:
            shutil.copyfile(HERE / MODEL / name, target / name)
        (target / "manifest.json").write_text(json.dumps(packaged, indent=2) + "\n", encoding="utf-8")


class BuildElsewhere(build):
    """`build_base` defaults to a fresh temporary folder, removed when the build ends."""

    def initialize_options(self):
        super().initialize_options()
        self.build_base = tempfile.mkdtemp(prefix="imdb-sentiment-build-")
        atexit.register(shutil.rmtree, self.build_base, ignore_errors=True)


if __name__ == "__main__":  # `python setup.py ...` and setuptools' build backend; tests import it
    setup(
        cmdclass={"build": BuildElsewhere, "build_py": BuildWithModel},
        package_data={
            "runtime": ["explain.html", "explain.js", "explain.css", "imdb-sentiment.service"],
            "runtime.serving": ["openapi.json"],
        },
    )
