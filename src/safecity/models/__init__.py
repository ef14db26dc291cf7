"""Model supply: a catalogue of named models, fetched from registry packages,
checked by sha256, converted to ONNX once, cached under ``SAFECITY_MODELS``
(default ``~/.cache/safecity/models``).

Other modules only call :func:`model_path`; installing is ``safecity models install``
(:func:`safecity.models.install.install`, with ``list_models`` and ``verify`` beside it).
"""

from __future__ import annotations

import os
from pathlib import Path


def models_dir() -> Path:
    return Path(os.environ.get("SAFECITY_MODELS", Path.home() / ".cache/safecity/models"))


def model_path(name: str) -> Path:
    """Path of an installed model file by catalogue name.

    Names: ``nanodet`` (ONNX), ``centernet`` (ONNX), ``faceres`` (ONNX),
    ``dlib_resnet`` (dlib .dat), ``dlib_shape5`` (dlib .dat), ``ppocr_det`` and
    ``ppocr_rec`` (ONNX, copied out of the installed ``rapidocr`` package). Raises ModelError
    telling the operator to run ``safecity models install`` when it is missing
    or has the wrong size. The dlib files are copied (sha256-checked) from the
    installed ``face_recognition_models`` package on first use.
    """
    from safecity.models.install import installed_path

    return installed_path(name)
