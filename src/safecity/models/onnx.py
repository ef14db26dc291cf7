"""One way to open an ONNX model: a CPU session with a set number of threads.

Every ONNX-backed stage (object detector, SCRFD faces, ArcFace embedder) opens its
model here, so a missing or broken file gives the same kind of one-line error.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from safecity.errors import ModelError


def open_session(path: Path, threads: int = 1, what: str = "model") -> ort.InferenceSession:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads.

    ``what`` names the model in errors ("detector model", "ArcFace model" …).
    Raises :class:`ModelError` when the file is missing or not a usable ONNX model.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{what} {path} does not exist.")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only; ours are raised as ModelError
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot load {what} {path} ({reason}).") from None
