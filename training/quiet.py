"""Keep TensorFlow's, tf2onnx's and ONNX Runtime's start-up chatter off the terminal.

TensorFlow logs its CPU features and absl set-up from C++ as it loads, tf2onnx and the ONNX
quantizer warn through Python logging about things this project handles on purpose (the
"pre-processing" hint, the int32 token ids it does not quantize). The commands call `quiet()`
before importing them, unless --verbose, so a user sees the command's own output.
"""

from __future__ import annotations

import logging
import os
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
