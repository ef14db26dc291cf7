"""Score calibration of the face embedders, as committed data.

One JSON file per fused embedder version (``dlib+faceres-2.json`` beside this
module) holds everything fitted on LFW's ``pairsDevTrain.txt`` (never on
``pairsDevTest.txt``) by ``safecity eval fit-fusion``:

- ``faceres.mean``: the 1024-d mean descriptor FaceRes subtracts before
  normalising, the mean of the raw descriptors of the training images;
  ``faceres.flip``: whether descriptors are averaged with the mirror image's;
- ``embedders.<name>.mu``/``sigma``: mean and standard deviation of that
  embedder's cosine over the training **impostor** pairs (z = (cos − mu) / sigma
  counts how far above a typical stranger a score lies);
- ``fused.weights``: ``w`` and ``1 − w`` of ``w·z_dlib + (1 − w)·z_faceres``;
  ``fused.dlib_flip``: whether the fused vector's dlib part is mirror-averaged
  (``mu``/``sigma`` of dlib then describe that part; dlib alone never is);
- ``thresholds`` and ``margins``: the default matcher settings of each embedder
  (``dlib`` and ``faceres`` in cosine, the fused one in its own score units).

>>> cal = load_calibration()
>>> cal.name, cal.faceres_mean.shape
('dlib+faceres-2', (1024,))
>>> cal.threshold("dlib")
0.925
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from safecity.errors import ConfigError

#: The fused embedder version this release ships (the JSON beside this module); it
#: is the name fused templates are stored under, so it changes whenever the vectors
#: would (-1, never released: the dlib part without mirror averaging).
FUSED_NAME = "dlib+faceres-2"
FUSED_PARTS = ("dlib", "faceres")


@dataclass(frozen=True)
class Calibration:
    """The fitted constants of one fused embedder version (see the module docstring)."""

    name: str
    faceres_mean: np.ndarray
    faceres_flip: bool
    mu: dict[str, float]
    sigma: dict[str, float]
    weights: tuple[float, ...]  # per part of the fused vector, in FUSED_PARTS order
    thresholds: dict[str, float]
    margins: dict[str, float]
    fitted_on: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    # dlib's part of the fused vector averages the photo's and its mirror image's
    # vectors (dlib alone never does: its stored "dlib" templates stay as they are).
    dlib_flip: bool = False

    def threshold(self, embedder: str) -> float:
        """Default matcher threshold of ``embedder`` (its own score units)."""
        return self._lookup(self.thresholds, embedder, "threshold")

    def margin(self, embedder: str) -> float:
        """Default lead over the next person for ``embedder`` (its own score units)."""
        return self._lookup(self.margins, embedder, "margin")

    def _lookup(self, table: dict[str, float], embedder: str, what: str) -> float:
        try:
            return float(table[embedder])
        except KeyError:
            raise ConfigError(
                f"no calibrated {what} for embedder '{embedder}'; set matcher.{what} in the config"
            ) from None

    def fused_scales(self) -> tuple[tuple[float, ...], float]:
        """``(a_i, b)`` with fused score = Σ a_i·cos_i − b, i over :data:`FUSED_PARTS`.

        From w·(c₁ − μ₁)/σ₁ + (1 − w)·(c₂ − μ₂)/σ₂: a_i = w_i/σ_i, b = Σ w_i·μ_i/σ_i.
        """
        a = tuple(w / self.sigma[p] for w, p in zip(self.weights, FUSED_PARTS, strict=True))
        b = sum(
            w * self.mu[p] / self.sigma[p] for w, p in zip(self.weights, FUSED_PARTS, strict=True)
        )
        return a, float(b)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what :func:`save_calibration` writes)."""
        return {
            "name": self.name,
            "fitted_on": self.fitted_on,
            "faceres": {
                "flip": self.faceres_flip,
                # 7 significant digits: a float32 round-trips, the file stays small
                "mean": [float(f"{v:.7g}") for v in self.faceres_mean.tolist()],
            },
            "zscore_pairs": "impostor",
            "embedders": {p: {"mu": self.mu[p], "sigma": self.sigma[p]} for p in FUSED_PARTS},
            "fused": {
                "parts": list(FUSED_PARTS),
                "weights": list(self.weights),
                "dlib_flip": self.dlib_flip,
            },
            "thresholds": self.thresholds,
            "margins": self.margins,
            "figures": self.figures,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "calibration") -> Calibration:
        try:
            mean = np.asarray(data["faceres"]["mean"], np.float32)
            cal = cls(
                name=str(data["name"]),
                faceres_mean=mean,
                faceres_flip=bool(data["faceres"]["flip"]),
                mu={p: float(data["embedders"][p]["mu"]) for p in FUSED_PARTS},
                sigma={p: float(data["embedders"][p]["sigma"]) for p in FUSED_PARTS},
                weights=tuple(float(w) for w in data["fused"]["weights"]),
                thresholds={k: float(v) for k, v in data["thresholds"].items()},
                margins={k: float(v) for k, v in data["margins"].items()},
                fitted_on=dict(data.get("fitted_on", {})),
                figures=dict(data.get("figures", {})),
                dlib_flip=bool(data["fused"].get("dlib_flip", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where} is not a safecity calibration file ({exc!r})") from None
        if mean.shape != (1024,) or len(cal.weights) != len(FUSED_PARTS):
            raise ConfigError(f"{where}: expected a 1024-d mean and {len(FUSED_PARTS)} weights")
        if min(cal.sigma.values()) <= 0:
            raise ConfigError(f"{where}: a standard deviation is not positive")
        return cal


def calibration_file(name: str = FUSED_NAME) -> Path:
    """Where the packaged calibration ``name`` lies (editable or wheel install alike)."""
    return Path(str(resources.files(__name__).joinpath(f"{name}.json")))


@functools.lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> Calibration:
    """The packaged calibration (default), or the JSON file at ``path``."""
    where = Path(path) if path is not None else calibration_file()
    try:
        data = json.loads(Path(where).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"calibration file {where} is missing; the installation is incomplete "
            "(or regenerate it with 'safecity eval fit-fusion')"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read calibration file {where}: {exc}") from None
    calibration = Calibration.from_dict(data, str(where))
    if path is None and calibration.name != FUSED_NAME:
        raise ConfigError(
            f"{where} calibrates '{calibration.name}', but this release stores fused "
            f"templates as '{FUSED_NAME}'; the installation is inconsistent"
        )
    return calibration


def save_calibration(calibration: Calibration, path: Path) -> Path:
    """Write ``calibration`` as JSON (sorted keys, so regenerating it gives the same bytes)."""
    from safecity.store.media import write_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(calibration.to_dict(), indent=1, sort_keys=True, allow_nan=False)
    write_atomically(path, text + "\n")
    path.chmod(0o644)
    return path
