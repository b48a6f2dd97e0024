"""The build the docs describe: `python -m build` makes the sdist, then the wheel from it, and
both carry the one list of shipped model files in setup.py (shipped_files). A file that the wheel's
build step copies but the sdist leaves out fails the wheel's build; this proves it does not."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
import zipfile

import pytest

from tests.conftest import ROOT, SHIPPED_BUNDLE

pytest.importorskip("build", reason="python -m build (dev extra)")


def load_setup():
    """setup.py as a module: setup() runs only under __main__, so this only defines its names."""
    spec = importlib.util.spec_from_file_location("project_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_files_are_the_device_part_of_the_bundle():
    shipped = load_setup().shipped_files()
    names = {path.removeprefix("models/imdb-lstm/") for path in shipped}
    assert all(path.startswith("models/imdb-lstm/") for path in shipped)
    assert {
        "manifest.json",
        "vocab.txt",
        "padding_states.npy",
        "model.cached.tflite",
        "model.cached.int8.tflite",
        "model.cached.onnx",
        "model.cached.int8.onnx",
        "model.steps.tflite",
        "model.steps.onnx",
    } == names
    assert all((SHIPPED_BUNDLE / name).is_file() for name in names)


def test_python_m_build_builds_the_wheel_from_the_sdist_with_the_same_model(tmp_path):
    """Exactly the documented command (isolated: it fetches setuptools as pyproject.toml asks).
    It leaves no build/ folder in the source tree, which would shadow the build tool."""
    had_build_folder = (ROOT / "build").exists()
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert had_build_folder or not (ROOT / "build").exists()
    (sdist,), (wheel,) = tmp_path.glob("*.tar.gz"), tmp_path.glob("*.whl")
    shipped = load_setup().shipped_files()
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        in_sdist = {name.removeprefix(top + "/") for name in archive.getnames()}
    assert {
        "setup.py",
        "pyproject.toml",
        "README.md",
        "runtime/imdb-sentiment.service",
        "runtime/explain.html",
        "runtime/explain.js",
        "runtime/explain.css",
        "runtime/serving/openapi.json",
    } <= in_sdist
    assert {name for name in in_sdist if name.startswith("models/") and name.count("/") == 2} == set(shipped)
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        packaged = json.loads(archive.read("runtime/models/imdb-lstm/manifest.json"))
    model_files = {
        name.removeprefix("runtime/models/imdb-lstm/")
        for name in in_wheel
        if name.startswith("runtime/models/imdb-lstm/")
    }
    assert model_files == {path.removeprefix("models/imdb-lstm/") for path in shipped}
    assert {record["file"] for record in packaged["artifacts"].values()} <= model_files
    assert {
        "runtime/imdb-sentiment.service",
        "runtime/explain.html",
        "runtime/explain.js",
        "runtime/explain.css",
        "runtime/service.py",
        "runtime/serving/openapi.json",
        "runtime/serving/app.py",
    } <= in_wheel
