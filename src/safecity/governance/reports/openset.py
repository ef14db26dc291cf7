"""The DPIA's open-set (1:N) figures: the saved ``safecity eval identify`` and the lists now.

A camera compares every face it sees with every person on the watchlists it
may search. Two error rates then matter, and both are stated for the
configured threshold: how many people on the list are missed (FNIR), and how
many passers-by not on the list raise an alarm (FPIR). FPIR grows with the
number N of persons searched, so the lists' sizes now are given beside an
estimate of FPIR at that size, computed from the evaluation's impostor scores
as FPIR(N) ≈ 1 − (1 − FMR(t))^N (FMR(t): the share of single comparisons of
two different people scoring at least t). The estimate is labelled as such;
its value at the evaluation's own N is shown beside the measured FPIR so a
reader can judge it.

>>> figures = gather_open_set(store, config, home=None)  # doctest: +SKIP
>>> figures.fpir_at_threshold, [w.estimated_fpir for w in figures.watchlists]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.governance.accuracy import latest_evaluation, openset_searches
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store

NO_OPEN_SET = "no open-set evaluation on record: run safecity eval identify --images DIR"

#: What N means, for auditors.
WHAT_N_MEANS = (
    "A camera compares each face it sees with every person on the watchlists it may search "
    "at that time. The more persons on those lists (N), the more chances a passer-by has of "
    "resembling one of them: the share of passers-by who raise a false alarm (FPIR) grows "
    "with N, roughly in proportion while it is small. Figures measured with a gallery of one "
    "size therefore do not hold for a list of another size; the estimates below scale them "
    "to the lists' sizes now."
)
ESTIMATE_METHOD = (
    "Estimate, not a measurement: FPIR(N) ≈ 1 − (1 − FMR)^N, where FMR is the share of "
    "single comparisons between two different people of the evaluation that score at least "
    "the threshold. It assumes that a passer-by's comparisons with different enrolled "
    "persons are independent, and one template per person; persons with several templates, "
    "or camera images worse than the evaluation's portraits, raise the real rate."
)


@dataclass(frozen=True)
class OpenSetPoint:
    fpir_target: float
    threshold: float | None
    fpir: float
    fnir: float


@dataclass(frozen=True)
class OpenSetEmbedder:
    embedder: str
    rank1: float
    points: tuple[OpenSetPoint, ...]
    fnir_at_threshold: float | None  # only for the configured embedder
    fpir_at_threshold: float | None


@dataclass(frozen=True)
class WatchlistSize:
    name: str
    searchable: bool  # its authorisation allows matching now
    persons: int  # enrolled now
    without_template: int  # of them, no template for the configured embedder (never matched)
    estimated_fpir: float | None  # at the configured threshold, for a list of this size


@dataclass(frozen=True)
class OpenSetFigures:
    embedder: str  # the configured embedder, as templates name it
    threshold: float | None  # the configured threshold (None: it could not be resolved)
    threshold_source: str
    evaluated: bool
    problem: str  # "" when the figures below are complete
    evaluated_at: datetime | None
    images: str | None
    gallery_size: int | None
    mated: int | None
    nonmated: int | None
    embedders: tuple[OpenSetEmbedder, ...]
    rank1: float | None  # configured embedder
    fnir_at_threshold: float | None
    fpir_at_threshold: float | None
    fmr_at_threshold: float | None
    estimate_at_evaluation_size: float | None  # the estimate at the evaluation's N (a check)
    watchlists: tuple[WatchlistSize, ...]
    searchable_persons: int  # on all searchable watchlists together
    estimated_fpir_all: float | None  # a camera searching all of them
    what_n_means: str = WHAT_N_MEANS
    estimate_method: str = ESTIMATE_METHOD


def _configured(config: SafecityConfig) -> tuple[str, float | None, str, str]:
    """(embedder name, threshold, where it comes from, problem)."""
    try:
        from safecity.vision.embedder import embedder_name

        name = embedder_name(config.embedder)
    except SafecityError as error:
        return config.embedder.kind, None, "", str(error)
    fpir = getattr(config.matcher, "fpir", None)
    source = (
        f"matcher.fpir {fpir:g} (from the saved evaluation)"
        if fpir is not None
        else "matcher.threshold"
    )
    try:
        from safecity.identity import matcher

        settings = getattr(matcher, "matcher_settings", None)
        if settings is not None:
            threshold = float(settings(config)[0])
            if fpir is None and getattr(config.matcher, "threshold", 0) is None:
                source = f"calibrated default of {name}"
        else:
            threshold = float(config.matcher.threshold)
    except SafecityError as error:
        return name, None, source, str(error)
    return name, threshold, source, ""


def gather_open_set(
    store: Store,
    config: SafecityConfig,
    home: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> OpenSetFigures:
    """The open-set section of the DPIA, as the evaluation on record and the store stand now."""
    from safecity.identity.reembed import persons_without_templates
    from safecity.identity.watchlists import list_watchlists

    name, threshold, source, problem = _configured(config)
    infos = list_watchlists(store, clock=clock)
    missing = persons_without_templates(store, name)
    searches = None
    evaluation = None
    try:
        evaluation = latest_evaluation(home, "identify")
    except SafecityError as error:
        problem = problem or str(error)
    report = evaluation.report if evaluation is not None else {}
    if evaluation is None and not problem:
        problem = NO_OPEN_SET
    elif evaluation is not None:
        searches = openset_searches(evaluation, name)
        if searches is None and not problem:
            problem = (
                f"the open-set evaluation on record has no figures for the configured embedder "
                f"{name}: run safecity eval identify --images DIR again"
            )

    def estimate(size: int) -> float | None:
        if searches is None or threshold is None:
            return None
        return 0.0 if size == 0 else searches.fpir_for_size(threshold, size)

    sizes = tuple(
        WatchlistSize(
            name=w.name,
            searchable=w.valid_now,
            persons=w.persons,
            without_template=missing.get(w.id, 0),
            estimated_fpir=estimate(w.persons - missing.get(w.id, 0)),
        )
        for w in infos
    )
    searchable = sum(w.persons - w.without_template for w in sizes if w.searchable)
    embedders = []
    for key in sorted(report.get("embedders") or {}, key=lambda k: (k != name, k)):
        s = openset_searches(evaluation, key) if evaluation is not None else None
        if s is None:
            continue
        points = []
        for target in report.get("fpir_targets") or (0.1, 0.01, 0.001):
            t = s.threshold_for_fpir(float(target))
            finite = t if t == t and abs(t) != float("inf") else None
            points.append(OpenSetPoint(float(target), finite, s.fpir(t), s.fnir(t)))
        at = key == name and threshold is not None
        embedders.append(
            OpenSetEmbedder(
                key,
                s.rank1,
                tuple(points),
                s.fnir(threshold) if at else None,  # type: ignore[arg-type]
                s.fpir(threshold) if at else None,  # type: ignore[arg-type]
            )
        )

    def count(key: str) -> int | None:
        value = report.get(key)
        return (
            int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    have = searches is not None and threshold is not None
    return OpenSetFigures(
        embedder=name,
        threshold=threshold,
        threshold_source=source,
        evaluated=evaluation is not None,
        problem=problem,
        evaluated_at=evaluation.saved_at if evaluation is not None else None,
        images=str(report["images"]) if report.get("images") else None,
        gallery_size=count("gallery_size"),
        mated=count("mated"),
        nonmated=count("nonmated"),
        embedders=tuple(embedders),
        rank1=searches.rank1 if searches is not None else None,
        fnir_at_threshold=searches.fnir(threshold) if have else None,  # type: ignore[union-attr,arg-type]
        fpir_at_threshold=searches.fpir(threshold) if have else None,  # type: ignore[union-attr,arg-type]
        fmr_at_threshold=searches.fmr(threshold) if have else None,  # type: ignore[union-attr,arg-type]
        estimate_at_evaluation_size=estimate(searches.gallery_size) if have else None,  # type: ignore[union-attr]
        watchlists=sizes,
        searchable_persons=searchable,
        estimated_fpir_all=estimate(searchable),
    )


__all__ = [
    "ESTIMATE_METHOD",
    "NO_OPEN_SET",
    "OpenSetEmbedder",
    "OpenSetFigures",
    "OpenSetPoint",
    "WHAT_N_MEANS",
    "WatchlistSize",
    "gather_open_set",
]
