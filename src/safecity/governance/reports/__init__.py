"""Accountability reports: a draft DPIA and a transparency report, as HTML or JSON.

Gathering (:func:`gather_dpia`, :func:`gather_transparency`) reads the store
and configuration into frozen dataclasses; rendering
(:func:`render_dpia_html`, :func:`render_transparency_html`) turns those into
one self-contained page. Producing a report is an export of personal-data
figures, so it is audited (:func:`record_export`) before the file is written.

>>> report = gather_transparency(store, config, start, end, by="alice")  # doctest: +SKIP
>>> html = render_transparency_html(report)  # doctest: +SKIP
>>> record_export(store, by="alice", report="transparency", start=start, end=end,
...               file=Path("t.html"))  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from safecity.governance import audit
from safecity.governance.audit import AuditRecord
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.reports.common import ReportError, check_window
from safecity.governance.reports.dpia import NO_SENSITIVE_TRAITS, DpiaReport, gather_dpia
from safecity.governance.reports.render import render_dpia_html, render_transparency_html
from safecity.governance.reports.transparency import TransparencyReport, gather_transparency
from safecity.store.db import Store

ReportKind = Literal["dpia", "transparency"]


def record_export(
    store: Store,
    *,
    by: str,
    report: ReportKind,
    start: datetime | None = None,
    end: datetime | None = None,
    file: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AuditRecord:
    """Audit the export of a report (action ``export``); ``file`` None means standard output."""
    return audit.record(
        store,
        actor=by,
        action="export",
        object=f"report:{report}",
        details={
            "report": report,
            "from": start.isoformat() if start else None,
            "to": end.isoformat() if end else None,
            "file": str(file) if file is not None else None,
        },
        clock=clock,
    )


__all__ = [
    "NO_SENSITIVE_TRAITS",
    "DpiaReport",
    "ReportError",
    "TransparencyReport",
    "check_window",
    "gather_dpia",
    "gather_transparency",
    "record_export",
    "render_dpia_html",
    "render_transparency_html",
]
