"""export/ is layered: config -> common -> validate -> step_parity -> parity -> run -> tflite, onnx,
imports point down, and no import hides in a function to dodge a circle. Read from the source
with ast, so an import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

EXPORT = Path(__file__).resolve().parents[2] / "export"
PROJECT = ("export", "runtime", "training")
# Third-party libraries a function may import when it needs them: they load TensorFlow (or take
# seconds), and the commands quiet TensorFlow's start-up logs (training.quiet) before that.
# Heavy or optional libraries an export command imports only when it runs: the converters, and the
# fleet extra (signing and the update repository), which a training install may not have.
LAZY_LIBRARIES = {"keras", "tensorflow", "tf_keras", "tf2onnx", "onnx", "onnxruntime", "scipy"}
LAZY_LIBRARIES |= {"model_signing", "tuf", "securesystemslib", "cryptography"}


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in sorted(EXPORT.glob("*.py"))}


def imported(node: ast.AST) -> list[str]:
    """The dotted module names an import statement names (for `from export import common`: export.common)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def export_edges(tree: ast.Module, names: set[str]) -> set[str]:
    """The export modules a module imports, anywhere in it."""
    edges = set()
    for node in ast.walk(tree):
        for name in imported(node):
            parts = name.split(".")
            if parts[0] == "export" and len(parts) > 1 and parts[1] in names:
                edges.add(parts[1])
    return edges


def function_imports(tree: ast.Module) -> list[tuple[str, int, str]]:
    """(function, line, module) of every import inside a function."""
    found = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    found.append((getattr(function, "name", "<lambda>"), node.lineno, module or "."))
    return found


def test_no_import_circle_among_export_modules():
    trees = modules()
    graph = {name: export_edges(tree, set(trees)) for name, tree in trees.items()}
    assert "run" in graph and "validate" in graph and "config" in graph
    state, path = {}, []

    def visit(name):
        state[name] = "open"
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                pytest.fail("import circle: " + " -> ".join(path[path.index(target) :] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_layers_point_down():
    trees = modules()
    graph = {name: export_edges(tree, set(trees)) for name, tree in trees.items()}
    assert graph["config"] == set()
    assert graph["common"] <= {"config"}
    assert "run" not in set().union(*(edges for name, edges in graph.items() if name not in ("tflite", "onnx")))
    for lower in ("config", "common", "validate", "step_parity", "parity"):
        assert not graph[lower] & {"run", "tflite", "onnx"}, lower


def test_no_import_inside_a_function_but_of_heavy_libraries():
    misplaced = [
        (name, function, line, module)
        for name, tree in modules().items()
        for function, line, module in function_imports(tree)
        if module.split(".")[0] in PROJECT or module.split(".")[0] not in LAZY_LIBRARIES
    ]
    assert misplaced == []


def test_no_function_over_80_lines():
    long = [
        (name, node.name, node.end_lineno - node.lineno + 1)
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80
    ]
    assert long == []
