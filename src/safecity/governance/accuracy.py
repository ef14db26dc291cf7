"""The latest accuracy evaluations on record, for the DPIA and the matcher.

``safecity eval lfw`` (pairwise verification) and ``safecity eval identify``
(open-set 1:N identification) save their reports here (:func:`save_evaluation`);
the DPIA reads them back (:func:`latest_evaluation`) to state how accurate
matching is at the configured threshold, and ``matcher: {fpir: …}`` turns a
target FPIR into a threshold from the identify one (:func:`threshold_for_fpir`).
One file per kind, ``evaluations/<kind>.json`` under the data home (``lfw``,
``identify``), replaced atomically: a crash mid-write leaves the previous one.

The report is the dict of :meth:`safecity.identity.lfw.LfwReport.to_dict`.
Figures *at the configured threshold* (TAR, FAR, accuracy) can only come from
the evaluation itself, which has the scores: it may add them under
``at_threshold`` (a dict, or a list of dicts, each with ``threshold``, ``tar``,
``far``, ``accuracy``; :func:`operating_point` computes one).

>>> save_evaluation({"protocol": "dev", "accuracy": 0.989}, home=tmp)  # doctest: +SKIP
>>> latest_evaluation(home=tmp).report["accuracy"]  # doctest: +SKIP
0.989
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from safecity.config import data_home
from safecity.errors import SafecityError
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.media import write_atomically

FILE = Path("evaluations") / "lfw.json"
#: The kinds of evaluation on record, and the command that makes each.
KINDS = {"lfw": "safecity eval lfw", "identify": "safecity eval identify"}


class EvaluationError(SafecityError):
    """The saved accuracy evaluation cannot be written or read."""


@dataclass(frozen=True)
class Evaluation:
    """One saved evaluation: when it was saved, its report, and where it lies."""

    saved_at: datetime
    report: dict[str, Any]
    path: Path

    def at_threshold(self, threshold: float, tolerance: float = 1e-6) -> dict[str, float] | None:
        """The operating point measured at ``threshold`` (TAR, FAR, accuracy), if recorded."""
        points = self.report.get("at_threshold")
        if isinstance(points, Mapping):
            points = [points]
        if not isinstance(points, list):
            return None
        for point in points:
            if not isinstance(point, Mapping):
                continue
            value = point.get("threshold")
            if isinstance(value, int | float) and abs(float(value) - threshold) <= tolerance:
                return {k: v for k, v in point.items() if isinstance(v, int | float)}
        return None


def _path(home: Path | None, kind: str = "lfw") -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown evaluation kind {kind!r}")
    return Path(home if home is not None else data_home()) / FILE.parent / f"{kind}.json"


def save_evaluation(
    report: Mapping[str, Any],
    home: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
    kind: str = "lfw",
) -> Path:
    """Save ``report`` as the latest evaluation of ``kind`` (replacing the previous one).

    Returns the file. ``home`` defaults to :func:`safecity.config.data_home` at call time.
    """
    path = _path(home, kind)
    body = {"saved_at": clock.now().isoformat(), "report": dict(report)}
    try:
        text = json.dumps(body, indent=2, sort_keys=True, allow_nan=False, default=str)
    except ValueError:
        raise EvaluationError(
            "the evaluation report holds a value that is not a number (NaN or infinity); "
            "it was not saved"
        ) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text + "\n")
    except OSError as error:
        raise EvaluationError(
            f"cannot save the evaluation to {path}: {error.strerror or error}"
        ) from None
    return path


def latest_evaluation(home: Path | None = None, kind: str = "lfw") -> Evaluation | None:
    """The evaluation of ``kind`` saved last, or None when there is none."""
    path = _path(home, kind)
    again = f"run {KINDS[kind]} again"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as error:
        raise EvaluationError(
            f"cannot read the saved evaluation {path}: {error.strerror}"
        ) from None
    except ValueError:
        raise EvaluationError(f"the saved evaluation {path} is not valid JSON; {again}") from None
    try:
        saved_at = datetime.fromisoformat(body["saved_at"])
        report = body["report"]
        if not isinstance(report, dict):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise EvaluationError(
            f"the saved evaluation {path} is not an evaluation record; {again}"
        ) from None
    return Evaluation(saved_at, report, path)


def operating_point(scores: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    """TAR, FAR and accuracy of cosine ``scores`` at ``threshold``.

    As in :mod:`safecity.identity.lfw`, a pair without a face (NaN) is a
    rejection for TAR and FAR, and always an error for accuracy.

    >>> s = np.array([0.95, 0.80, 0.93, np.nan]); y = np.array([True, True, False, True])
    >>> operating_point(s, y, 0.925)
    {'threshold': 0.925, 'tar': 0.3333333333333333, 'far': 1.0, 'accuracy': 0.25}
    """
    filled = np.where(np.isnan(scores), -np.inf, scores)
    accept = filled >= threshold
    same = np.asarray(same, bool)
    genuine, impostor = int(same.sum()), int((~same).sum())
    return {
        "threshold": float(threshold),
        "tar": float(accept[same].sum() / genuine) if genuine else 0.0,
        "far": float(accept[~same].sum() / impostor) if impostor else 0.0,
        "accuracy": float(np.mean(~np.isnan(scores) & (accept == same))) if len(same) else 0.0,
    }


# --------------------------------------------------------------------------- open set


def openset_searches(evaluation: Evaluation, embedder: str):
    """The saved search outcome of ``embedder`` in an identify evaluation, or None.

    Returns a :class:`safecity.identity.openset.Searches` (every open-set figure
    at any threshold can be computed from it).
    """
    from safecity.identity.openset import Searches

    embedders = evaluation.report.get("embedders")
    entry = embedders.get(embedder) if isinstance(embedders, Mapping) else None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("searches"), Mapping):
        return None
    try:
        return Searches.from_dict(entry["searches"])
    except ValueError:
        return None


def threshold_for_fpir(fpir: float, embedder: str, home: Path | None = None) -> float:
    """The score threshold at which ``embedder`` reached FPIR ≤ ``fpir`` in the saved evaluation.

    That is the lowest threshold at which at most that share of the non-mated
    searches of ``safecity eval identify`` raised an alarm, for a list the size
    of the evaluation's gallery. :class:`EvaluationError`, saying which command
    to run, when no identify evaluation of ``embedder`` is saved, or when it has
    too few non-mated searches to measure so low a rate.
    """
    run = (
        "run safecity eval identify --images DIR (it evaluates the configured embedder, "
        f"{embedder})"
    )
    evaluation = latest_evaluation(home, "identify")
    if evaluation is None:
        raise EvaluationError(
            f"matcher.fpir {fpir:g} needs a saved open-set evaluation to turn the target "
            f"rate into a threshold, and there is none: {run}"
        )
    searches = openset_searches(evaluation, embedder)
    if searches is None:
        embedders = evaluation.report.get("embedders")
        found = ", ".join(sorted(embedders)) if isinstance(embedders, Mapping) else "none"
        raise EvaluationError(
            f"matcher.fpir {fpir:g}: the saved open-set evaluation ({evaluation.path}) has no "
            f"figures for the configured embedder {embedder} (it has: {found}); {run}"
        )
    if searches.nonmated < 1 or fpir * searches.nonmated < 1 - 1e-9:
        floor = 1 / searches.nonmated if searches.nonmated else 1.0
        raise EvaluationError(
            f"matcher.fpir {fpir:g} is below what the saved evaluation can measure: it has "
            f"{searches.nonmated} searches of people not enrolled, so its smallest measurable "
            f"false-alarm rate is {floor:.2g}; give matcher.fpir ≥ {floor:.2g} or evaluate on "
            "a folder with more people who have a single image"
        )
    threshold = searches.threshold_for_fpir(fpir)
    if not np.isfinite(threshold):
        raise EvaluationError(
            f"matcher.fpir {fpir:g}: the saved evaluation of {embedder} has no scores to "
            f"choose a threshold from; {run}"
        )
    return float(threshold)
