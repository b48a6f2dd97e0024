"""The device package holds device code only, and its imports point down: importing every module
of `runtime` loads nothing of the training side (training, export, TensorFlow, Keras) nor the
benchmarks; the server (runtime/serving) builds on the runtime's API and nothing below it imports
the server; uvicorn's internals are touched in one module. The first test runs in a fresh
interpreter, so what this test session already imported cannot hide an import, and passes in an
environment without TensorFlow (a device's)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

FORBIDDEN = ("training", "export", "tensorflow", "keras", "benchmarks")
# The server may use a web stack that a runtime-only environment need not install: a module
# missing one of these is skipped there, not failed. Any other missing module is a failure.
OPTIONAL = ("uvicorn", "starlette", "prometheus_client")
RUNTIME = ROOT / "runtime"
SERVING = RUNTIME / "serving"
# The entry point of `imdb-sentiment-serve`: the one module outside runtime/serving that imports it.
SERVE_COMMAND = RUNTIME / "serve.py"
UVICORN_INTERNALS = SERVING / "uvicorn_internals.py"
MAX_FUNCTION_LINES = 80

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


def imports_of(path: Path, inside_functions: bool = True) -> list[tuple[int, str]]:
    """(line, module) of every absolute import statement in a file (for `from a import b`, both `a`
    and `a.b`); with `inside_functions` False, only those outside functions."""
    found = []
    for node in _nodes(ast.parse(path.read_text(), str(path)), inside_functions):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found += [(node.lineno, node.module or "")]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _nodes(node: ast.AST, inside_functions: bool):
    for child in ast.iter_child_nodes(node):
        if inside_functions or not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield child
            yield from _nodes(child, inside_functions)


def runtime_files() -> list[Path]:
    return sorted(RUNTIME.rglob("*.py"))


def test_runtime_imports_no_training_side_module():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["forbidden"] == [], f"importing runtime loaded {out['forbidden']}"
    assert {
        "runtime.classifier",
        "runtime.bundle",
        "runtime.backends",
        "runtime.predict",
        "runtime.model_options",
    } <= set(out["imported"])
    # Only the server may need the web stack: its command and its package.
    assert all(name == "runtime.serve" or name.startswith("runtime.serving.") for name in out["skipped"]), out[
        "skipped"
    ]
    if not out["skipped"]:  # the web stack is installed: every module of the server imports
        assert {
            "runtime.serve",
            "runtime.serving.app",
            "runtime.serving.server",
            "runtime.serving.uvicorn_internals",
        } <= set(out["imported"])


def test_no_runtime_module_imports_the_training_side_even_lazily():
    """The subprocess above sees only module-level imports; an import inside a function (as the
    benchmark, once in runtime/, had) would load the training side only when called. Read every
    import statement instead, in runtime/serving too. (backends may load `tensorflow.lite` by
    name, through importlib, when it is the only TFLite interpreter installed: a fallback, not an
    import statement.)"""
    found = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in runtime_files()
        for line, name in imports_of(path)
        if name.split(".")[0] in FORBIDDEN
    ]
    assert found == []


def test_imports_point_down_to_the_runtime_never_up_to_the_server():
    """runtime/serving builds on the runtime's API (runtime.classifier, runtime.model_options, ...);
    nothing else in runtime imports the server or its web stack, but the command runtime/serve.py."""
    found = []
    for path in runtime_files():
        if path.is_relative_to(SERVING) or path == SERVE_COMMAND:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{line} {name}"
            for line, name in imports_of(path)
            if name.startswith("runtime.serving") or name.split(".")[0] in OPTIONAL
        ]
    assert found == [], "only runtime/serving (and the command runtime/serve.py) may import the server"


# The server's modules from the bottom up: each may import only those before it.
SERVING_LAYERS = (
    "protocol",
    "metrics",
    "pool",
    "versions",
    "follow",
    "dataplane",
    "middleware",
    "api_page",
    "app",
    "uvicorn_internals",
    "server",
)


def test_the_server_modules_import_down_their_own_order():
    assert {path.stem for path in SERVING.glob("*.py")} - {"__init__"} == set(SERVING_LAYERS), "a new module: place it"
    found = []
    for index, module in enumerate(SERVING_LAYERS):
        above = {f"runtime.serving.{name}" for name in SERVING_LAYERS[index:]}
        found += [
            f"runtime/serving/{module}.py:{line} {name}"
            for line, name in imports_of(SERVING / f"{module}.py")
            if name in above
        ]
    assert found == [], "runtime/serving imports up its own layers"


def test_the_server_does_not_import_the_cli():
    """The server takes a ClassifierOptions (filled by runtime/model_options.py), not the CLI's arguments."""
    found = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in [SERVE_COMMAND, *sorted(SERVING.rglob("*.py"))]
        for line, name in imports_of(path)
        if name.startswith("runtime.predict")
    ]
    assert found == []


def test_uvicorn_internals_are_imported_in_one_module():
    """uvicorn's non-public modules (its protocols, its server module) appear in
    runtime/serving/uvicorn_internals.py only; the rest of the server uses uvicorn's public names."""
    found = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in runtime_files()
        if path != UVICORN_INTERNALS
        for line, name in imports_of(path)
        if name.startswith("uvicorn.")
    ]
    assert found == []


def test_the_server_imports_nothing_inside_functions():
    """An import inside a function hides a cycle; the server's modules import at the top."""
    found = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in sorted(SERVING.rglob("*.py"))
        for line, name in set(imports_of(path)) - set(imports_of(path, inside_functions=False))
    ]
    assert found == []


def test_no_function_in_runtime_is_over_80_lines():
    """A function a reader holds in one screen."""
    found = []
    for path in runtime_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert found == []
