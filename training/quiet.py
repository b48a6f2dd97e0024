"""Keep TensorFlow's, tf2onnx's and ONNX Runtime's start-up chatter off the terminal.

TensorFlow logs its CPU features and absl set-up from C++ as it loads, tf2onnx and the ONNX
quantizer warn through Python logging about things this project handles on purpose (the
"pre-processing" hint, the int32 token ids it does not quantize). The commands call `quiet()`
before importing them, unless --verbose, so a user sees the command's own output. TensorFlow
2.21 writes absl's "All log messages before absl::InitializeLog()" and oneDNN's line straight to
file descriptor 2 as it is imported, whatever TF_CPP_MIN_LOG_LEVEL says: `quiet()` imports it
with that descriptor pointed at /dev/null (a failed import still raises, with its message).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings


def quiet(verbose: bool = False) -> None:
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read by TensorFlow's C++ logging when it loads
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in ("tensorflow", "tf2onnx", "absl", "root", "onnxruntime", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization warns on the root logger
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import_tensorflow_silently()


def import_tensorflow_silently() -> None:
    """Import TensorFlow (if installed and not yet imported) with standard error closed to it."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
