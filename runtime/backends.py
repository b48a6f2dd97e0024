"""The interpreters a device may have, behind one small interface: named arrays in, one array out.

`tflite` runs .tflite files with LiteRT (`ai_edge_litert`), else `tflite_runtime`, else
`tensorflow.lite` if that is all there is; `onnx` runs .onnx files with ONNX Runtime.
Nothing here imports TensorFlow unless it is the only TFLite interpreter installed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from runtime.config import ModelConfig

# A model file's own description of what it was exported for, as JSON: ONNX metadata_props and
# TFLite metadata under this name (written by export/common.py, checked by the classifier).
FINGERPRINT_KEY = "bundle_fingerprint"
MAX_THREADS = 64  # more threads than any device has cores; LiteRT crashes on absurd counts
_TFLITE_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


class BackendError(Exception):
    """No interpreter for the asked backend, or a model file it cannot load."""


class LoadedModel(Protocol):
    """What the runtime needs from an interpreter holding one model file."""

    input_shapes: dict[str, tuple[int, ...]]  # each input's shape, -1 for a dynamic size
    metadata: dict[str, bytes]  # the file's named metadata: where its export fingerprint is
    module: str  # the interpreter's module, for /v1/model and error messages

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The one output for named inputs; safe to call from several threads."""

    def config_mismatch(self, config: ModelConfig, form: str) -> str | None:
        """Which model config field the graph contradicts, as "FIELD does not match the graph (SHOWN)", or None."""


@dataclass(frozen=True)
class Backend:
    """One interpreter the runtime can run artifacts with: the one place that names it."""

    name: str  # in manifests, artifact keys and the --backend option
    suffix: str  # its artifacts' file suffix
    platform: str  # the Open Inference Protocol's platform name in model metadata
    install: str  # what to install for it: this package's extra, which pins the tested version
    is_installed: Callable[[], bool]
    load: Callable[..., LoadedModel]  # (content, threads, xnnpack, show_native_logs) -> a loaded model


TFLITE_INSTALL = 'pip install "imdb-sentiment-edge[litert]" (or [tflite-runtime])'


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def tflite_module_name() -> str | None:
    return next((name for name in _TFLITE_MODULES if installed(name)), None)


def available_backends() -> list[str]:
    """The registered backends whose interpreter is installed, in the registry's order of preference."""
    return [backend.name for backend in REGISTRY.values() if backend.is_installed()]


def backend_named(name: str) -> Backend:
    """The registry's entry for a backend name; an unknown name is an error, never a default."""
    if name not in REGISTRY:
        raise BackendError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKENDS)}")
    return REGISTRY[name]


def resolve_backend(backend: str, in_bundle: Callable[[str], bool] = lambda name: True) -> str:
    """`auto` becomes the first installed backend whose artifact the bundle has (`in_bundle`), else
    the first installed one; a named one must be installed."""
    available = available_backends()
    if backend == "auto":
        if not available:
            hints = " or ".join(entry.install for entry in REGISTRY.values())
            raise BackendError(f"no interpreter installed: {hints}")
        return next((name for name in available if in_bundle(name)), available[0])
    if backend not in available:
        raise BackendError(f"backend {backend!r} is not installed: {backend_named(backend).install}")
    return backend


# LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the process's stderr
# when it first allocates tensors, with no switch to turn it off. Whether it is shown is the
# loading classifier's option (ClassifierOptions.show_native_logs, the CLIs' --verbose), passed
# down to each interpreter it makes: there is no process-wide switch.


@contextlib.contextmanager
def native_logs_silenced(shown: bool = False):
    """For the block, send what native code writes to file descriptor 2 to /dev/null, unless `shown`."""
    if shown:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_threads(threads: int | None) -> None:
    if threads is not None and (type(threads) is not int or not 1 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")


def _flatbuffer_tables(view, field: int) -> list:
    """The tables of a flatbuffer table's vector field (empty if absent), read in place."""
    from flatbuffers import table

    relative = view.Offset(4 + 2 * field)
    if not relative:
        return []
    start = view.Vector(relative)
    return [table.Table(view.Bytes, view.Indirect(start + 4 * i)) for i in range(view.VectorLen(relative))]


def tflite_metadata(content: bytes) -> dict[str, bytes]:
    """The named metadata buffers of a .tflite flatbuffer (schema.fbs: Model.buffers, Model.metadata).

    LiteRT's Python interpreter does not expose them, so they are read with the flatbuffers
    library (a dependency of LiteRT); the field numbers are those of TFLite's schema."""
    import struct

    from flatbuffers import encode, number_types, packer, table

    def offset(view: table.Table, field: int) -> int:  # where a field's value is, 0 if absent
        relative = view.Offset(4 + 2 * field)
        return view.Pos + relative if relative else 0

    buffer = content  # read in place: the tables index and unpack the bytes without a copy
    try:
        model = table.Table(buffer, encode.Get(packer.uoffset, buffer, 0))
        buffers, found = _flatbuffer_tables(model, 4), {}
        for entry in _flatbuffer_tables(model, 6):
            name = entry.String(offset(entry, 0)).decode("utf-8") if offset(entry, 0) else ""
            index = entry.Get(number_types.Uint32Flags, offset(entry, 1)) if offset(entry, 1) else 0
            data = buffers[index]
            relative = data.Offset(4)
            start = data.Vector(relative) if relative else 0
            found[name] = bytes(buffer[start : start + data.VectorLen(relative)]) if relative else b""
        return found
    except (IndexError, struct.error, UnicodeDecodeError) as error:
        raise BackendError(f"unreadable TFLite metadata ({type(error).__name__})") from None


def fingerprint_of(metadata: dict) -> dict | None:
    """The export fingerprint stored in a model file's metadata, or None if it has none."""
    raw = metadata.get(FINGERPRINT_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


class TFLiteModel:
    """A .tflite flatbuffer in a LiteRT / tflite-runtime interpreter, called by its signature's names.

    An interpreter holds one set of input and output tensors, so calls from several threads are
    serialised by a lock: answers stay each caller's own."""

    def __init__(
        self, content: bytes, threads: int | None = None, xnnpack: bool = True, show_native_logs: bool = False
    ):
        module_name = tflite_module_name()
        if module_name is None:
            raise BackendError(f"no TFLite interpreter installed: {TFLITE_INSTALL}")
        module = importlib.import_module(module_name)
        options = (
            {}
            if xnnpack
            else {  # XNNPACK is the default CPU delegate; off only to measure it
                "experimental_op_resolver_type": module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            }
        )
        try:
            self._interpreter = module.Interpreter(model_content=content, num_threads=threads, **options)
            with native_logs_silenced(
                show_native_logs
            ):  # the delegate is applied, and announced, on the first allocation
                self._interpreter.allocate_tensors()
            runner = self._interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as error:
            raise BackendError(f"cannot be loaded by {module_name} ({error})") from None
        details = runner.get_input_details()
        self._inputs = {name: detail["index"] for name, detail in details.items()}
        self.input_shapes = {
            name: tuple(int(size) for size in detail["shape_signature"]) for name, detail in details.items()
        }  # -1: a dynamic size
        (self._output,) = [detail["index"] for detail in runner.get_output_details().values()]
        self._shapes = {name: None for name in self._inputs}
        self._lock = threading.Lock()
        self.metadata = tflite_metadata(content)
        self.module = module_name
        self.operators = tflite_main_operators(content)  # what loading checks the manifest's model config against

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            return self._run(feeds)

    def config_mismatch(self, config: ModelConfig, form: str) -> str | None:
        """What a TFLite graph shows: a backward direction is read through REVERSE_V2, and in the
        "while" form a stack of forward LSTMs is one WHILE loop a layer. (lstm_units shows in the
        seed graph's h0 and padding states, checked where those load.)"""
        if (TFLITE_REVERSE_V2 in self.operators) != config.bidirectional:
            return "bidirectional does not match the graph"
        loops = self.operators.count(TFLITE_WHILE)
        if form == "while" and not config.bidirectional and loops != config.layers:
            return f"layers does not match the graph ({loops!r})"
        return None

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
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
    """An .onnx model in an ONNX Runtime CPU session (whose `run` is safe to call from many threads)."""

    def __init__(
        self, content: bytes, threads: int | None = None, xnnpack: bool = True, show_native_logs: bool = False
    ):  # xnnpack and show_native_logs are TFLite's: ONNX Runtime has neither, and is kept quiet below
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only; warnings about unused initializers are noise here
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own unexported exception types
            raise BackendError(f"cannot be loaded by onnxruntime ({error})") from None
        self._output = self._session.get_outputs()[0].name
        self.input_shapes = {
            value.name: tuple(size if isinstance(size, int) else -1 for size in value.shape)
            for value in self._session.get_inputs()
        }  # -1: a dynamic size
        self.metadata = {
            key: value.encode("utf-8") for key, value in self._session.get_modelmeta().custom_metadata_map.items()
        }
        self.module = "onnxruntime"
        self.lstm_nodes = onnx_lstm_nodes(content)  # what loading checks the manifest's model config against

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([self._output], feeds)[0]

    def config_mismatch(self, config: ModelConfig, form: str) -> str | None:
        """One LSTM node a layer, each of lstm_units, both ways only if bidirectional."""
        nodes = self.lstm_nodes
        direction = "bidirectional" if config.bidirectional else "forward"
        found = {
            "layers": (config.layers, len(nodes)),
            "lstm_units": (config.lstm_units, nodes[0]["hidden_size"] if nodes else None),
            "bidirectional": (direction, nodes[0]["direction"] if nodes else None),
        }
        for key, (recorded, graph) in found.items():
            if recorded != graph or any(node != nodes[0] for node in nodes):
                return f"{key} does not match the graph ({graph!r})"
        return None


def load_model(
    backend: str, content: bytes, threads: int | None = None, xnnpack: bool = True, show_native_logs: bool = False
) -> LoadedModel:
    """An interpreter for a model file's bytes (read and verified by the caller); `show_native_logs`
    lets the interpreter's own log lines reach stderr."""
    check_threads(threads)
    return backend_named(backend).load(content, threads, xnnpack, show_native_logs)


def _protobuf_fields(data: memoryview):
    """(field number, value) of a protobuf message: ints for varints, memoryviews for bytes."""
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while position < len(data):
        key = varint()
        kind = key & 7
        if kind == 0:
            yield key >> 3, varint()
        elif kind == 2:
            size = varint()
            yield key >> 3, data[position : position + size]
            position += size
        elif kind in (1, 5):
            position += 8 if kind == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {kind}")


def onnx_lstm_nodes(content: bytes) -> list[dict]:
    """The LSTM nodes (LSTM, DynamicQuantizeLSTM) of an ONNX model's main graph, in order, each as
    {"hidden_size": int, "direction": str}: read from the protobuf itself (ModelProto.graph = 7,
    GraphProto.node = 1, NodeProto.op_type = 4 / attribute = 5, AttributeProto name 1, i 3, s 4),
    since ONNX Runtime does not show a graph and a device has no onnx package."""
    nodes = []
    try:
        graph = next(value for field, value in _protobuf_fields(memoryview(content)) if field == 7)
        for field, node in _protobuf_fields(graph):
            if field != 1:
                continue
            parts = list(_protobuf_fields(node))
            if not any(f == 4 and bytes(v) in (b"LSTM", b"DynamicQuantizeLSTM") for f, v in parts):
                continue
            attributes = {}
            for attribute in (v for f, v in parts if f == 5):
                values = dict(_protobuf_fields(attribute))
                attributes[bytes(values.get(1, b"")).decode()] = values.get(3, values.get(4))
            direction = attributes.get("direction")
            nodes.append(
                {
                    "hidden_size": attributes.get("hidden_size"),
                    "direction": bytes(direction).decode() if direction is not None else "forward",
                }
            )
    except (StopIteration, IndexError, ValueError, UnicodeDecodeError):
        raise BackendError("unreadable ONNX graph") from None
    return nodes


TFLITE_WHILE, TFLITE_REVERSE_V2 = 119, 105  # BuiltinOperator codes in TFLite's schema.fbs


def tflite_main_operators(content: bytes) -> list[int]:
    """The builtin operator codes of a .tflite file's main subgraph, in order (schema.fbs:
    Model.operator_codes = 1, Model.subgraphs = 2, SubGraph.operators = 3, Operator.opcode_index = 0,
    OperatorCode.deprecated_builtin_code = 0 / builtin_code = 3, the larger being the code)."""
    import struct

    from flatbuffers import encode, number_types, packer, table

    def scalar(view: table.Table, field: int, flags) -> int:
        relative = view.Offset(4 + 2 * field)
        return view.Get(flags, view.Pos + relative) if relative else 0

    try:
        model = table.Table(content, encode.Get(packer.uoffset, content, 0))
        codes = [
            max(scalar(code, 0, number_types.Int8Flags), scalar(code, 3, number_types.Int32Flags))
            for code in _flatbuffer_tables(model, 1)
        ]
        return [
            codes[scalar(operator, 0, number_types.Uint32Flags)]
            for operator in _flatbuffer_tables(_flatbuffer_tables(model, 2)[0], 3)
        ]
    except (IndexError, struct.error) as error:
        raise BackendError(f"unreadable TFLite graph ({type(error).__name__})") from None


# The registry: adding an interpreter is one entry here (and its model class above). The order is
# `auto`'s preference. Platform names are Triton's; LiteRT has none there, so it is named after its format.
REGISTRY = {
    backend.name: backend
    for backend in (
        Backend("tflite", ".tflite", "tflite", TFLITE_INSTALL, lambda: tflite_module_name() is not None, TFLiteModel),
        Backend(
            "onnx",
            ".onnx",
            "onnxruntime_onnx",
            'pip install "imdb-sentiment-edge[onnx]"',
            lambda: installed("onnxruntime"),
            OnnxModel,
        ),
    )
}
BACKENDS = tuple(REGISTRY)
