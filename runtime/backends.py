"""The interpreters a device may have, behind one small interface: named arrays in, one array out.

`tflite` runs .tflite files with LiteRT (`ai_edge_litert`), else `tflite_runtime`, else
`tensorflow.lite` if that is all there is; `onnx` runs .onnx files with ONNX Runtime.
Nothing here imports TensorFlow unless it is the only TFLite interpreter installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np

BACKENDS = ("tflite", "onnx")
_TFLITE_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


class BackendError(Exception):
    """No interpreter for the asked backend, or a model file it cannot load."""


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def tflite_module_name() -> str | None:
    return next((name for name in _TFLITE_MODULES if installed(name)), None)


def available_backends() -> list[str]:
    found = []
    if tflite_module_name():
        found.append("tflite")
    if installed("onnxruntime"):
        found.append("onnx")
    return found


def resolve_backend(backend: str) -> str:
    """`auto` becomes the first installed backend; a named one must be installed."""
    available = available_backends()
    if backend == "auto":
        if not available:
            raise BackendError("no interpreter installed: pip install ai-edge-litert (or onnxruntime)")
        return available[0]
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
    if backend not in available:
        hint = "ai-edge-litert or tflite-runtime" if backend == "tflite" else "onnxruntime"
        raise BackendError(f"backend {backend!r} is not installed: pip install {hint}")
    return backend


class TFLiteModel:
    """A .tflite file in a LiteRT / tflite-runtime interpreter, called by its signature's names."""

    def __init__(self, path: Path, threads: int | None = None, xnnpack: bool = True):
        module_name = tflite_module_name()
        if module_name is None:
            raise BackendError("no TFLite interpreter installed: pip install ai-edge-litert")
        module = importlib.import_module(module_name)
        options = {} if xnnpack else {  # XNNPACK is the default CPU delegate; off only to measure it
            "experimental_op_resolver_type": module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        try:
            self._interpreter = module.Interpreter(model_path=str(path), num_threads=threads, **options)
            runner = self._interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as error:
            raise BackendError(f"{path}: cannot be loaded by {module_name} ({error})") from None
        details = runner.get_input_details()
        self._inputs = {name: detail["index"] for name, detail in details.items()}
        self.input_shapes = {name: tuple(int(size) for size in detail["shape_signature"])
                             for name, detail in details.items()}  # -1: a dynamic size
        (self._output,) = [detail["index"] for detail in runner.get_output_details().values()]
        self._shapes = {name: None for name in self._inputs}
        self.module = module_name

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        resized = False
        for name, value in feeds.items():
            if self._shapes[name] != value.shape:
                self._interpreter.resize_tensor_input(self._inputs[name], value.shape)
                self._shapes[name] = value.shape
                resized = True
        if resized:
            self._interpreter.allocate_tensors()
        for name, value in feeds.items():
            self._interpreter.set_tensor(self._inputs[name], value)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


class OnnxModel:
    """An .onnx file in an ONNX Runtime CPU session."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only; warnings about unused initializers are noise here
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own unexported exception types
            raise BackendError(f"{path}: cannot be loaded by onnxruntime ({error})") from None
        self._output = self._session.get_outputs()[0].name
        self.input_shapes = {value.name: tuple(size if isinstance(size, int) else -1 for size in value.shape)
                             for value in self._session.get_inputs()}  # -1: a dynamic size
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.module = "onnxruntime"

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([self._output], feeds)[0]


def load_model(backend: str, path: Path, threads: int | None = None, xnnpack: bool = True):
    return TFLiteModel(path, threads, xnnpack) if backend == "tflite" else OnnxModel(path, threads)
