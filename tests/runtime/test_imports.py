"""The device package holds device code only: importing every module of `runtime` loads nothing of
the training side (training, export, TensorFlow, Keras) nor the benchmarks. Runs in a fresh
interpreter, so what this test session already imported cannot hide an import, and passes in an
environment without TensorFlow (a device's)."""

import json
import subprocess
import sys

from tests.conftest import ROOT

FORBIDDEN = ("training", "export", "tensorflow", "keras", "benchmarks")
# runtime/serve.py may use a web stack that a runtime-only environment need not install: a module
# missing one of these is skipped there, not failed. Any other missing module is a failure.
OPTIONAL = ("uvicorn", "starlette", "prometheus_client")

_PROBE = f"""
import importlib, json, pkgutil, sys
import runtime

imported, skipped = [], {{}}
for info in pkgutil.walk_packages(runtime.__path__, "runtime."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in {OPTIONAL!r}:
            raise
        skipped[info.name] = error.name
    else:
        imported.append(info.name)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {FORBIDDEN!r})
print(json.dumps({{"imported": imported, "skipped": skipped, "forbidden": loaded}}))
"""


def test_runtime_imports_no_training_side_module():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["forbidden"] == [], f"importing runtime loaded {out['forbidden']}"
    assert {"runtime.classifier", "runtime.bundle", "runtime.backends", "runtime.predict"} <= set(out["imported"])
    assert not set(out["skipped"]) - {"runtime.serve"}, out["skipped"]  # only the server may need the web stack


def test_no_runtime_module_imports_the_training_side_even_lazily():
    """The subprocess above sees only module-level imports; an import inside a function (as the
    benchmark, once in runtime/, had) would load the training side only when called. Read every
    import statement instead. (backends may load `tensorflow.lite` by name, through importlib, when it
    is the only TFLite interpreter installed: a fallback, not an import statement.)"""
    import ast

    found = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                      if name.split(".")[0] in FORBIDDEN]
    assert found == []


MAX_FUNCTION_LINES = 80


def test_no_function_in_runtime_is_over_80_lines():
    """A function a reader holds in one screen (runtime/serving included)."""
    import ast

    found = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert found == []
