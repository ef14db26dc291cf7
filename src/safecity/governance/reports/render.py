"""Rendering the reports to one self-contained HTML page each (charts inline as SVG).

The templates live in ``safecity/governance/templates``; autoescaping is on,
so names and notes typed by users can never become markup. Only the charts,
which this module draws itself, are inserted unescaped.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from safecity.governance import charts
from safecity.governance.reports.common import OUTCOMES
from safecity.governance.reports.dpia import LFW_CAVEAT, DpiaReport
from safecity.governance.reports.transparency import TransparencyReport

DPO = "[to be completed by the data-protection officer]"

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem;
     border-bottom: 1px solid #ccc; padding-bottom: .2rem; } h3 { margin-top: 1.4rem; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f3f3f3; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #555; } .dpo { background: #fff6d5; border: 1px dashed #c9a400;
        padding: .15rem .4rem; color: #6b5600; font-style: italic; }
.state-in-force { color: #2e7d32; font-weight: 600; } .state-check { color: #b26a00;
  font-weight: 600; } .state-broken { color: #c62828; font-weight: 700; }
.statement { border-left: 4px solid #1565c0; padding: .4rem .8rem; background: #f4f8fd; }
.warn { border-left: 4px solid #c62828; padding: .4rem .8rem; background: #fdf3f3; }
figure { margin: .8rem 0; } figure svg { max-width: 100%; height: auto; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } }
"""


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("safecity.governance", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, pct=pct, hours=hours, num=num, state_class=state_class)
    env.globals.update(DPO=DPO, css=Markup(CSS))
    return env


_ENV: Environment | None = None


def environment() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV


# -- filters --------------------------------------------------------------------------
def when(value: datetime | None) -> str:
    """A time for people: UTC, to the minute (``—`` for none).

    >>> from datetime import UTC, datetime
    >>> when(datetime(2026, 11, 27, 8, 0, 30, tzinfo=UTC))
    '2026-11-27 08:00 UTC'
    """
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage, ``n/a`` when there is none.

    >>> pct(0.25), pct(None), pct(0.98952, 2)
    ('25.0 %', 'n/a', '98.95 %')
    """
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def hours(value: float) -> str:
    """Hours with two decimals (``0.50``)."""
    return f"{value:.2f}"


def num(value: float | int | None) -> str:
    """A count or sum: integers without decimals, others to three significant digits."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", "\u202f")
    return f"{value:.3g}"


def state_class(state: str) -> str:
    return "state-" + state.replace(" ", "-")


# -- pages ----------------------------------------------------------------------------
def transparency_charts(report: TransparencyReport) -> dict[str, Markup]:
    """The transparency report's charts (empty strings where there is nothing to show)."""
    out = {"hours": "", "outcomes": "", "periods": ""}
    if report.cameras:
        out["hours"] = charts.bar_chart(
            [c.camera for c in report.cameras],
            [round(c.identification_hours, 2) for c in report.cameras],
            title="Hours of identification per camera",
            ylabel="hours",
            value_format="{:.2f}",
        )
    m = report.matches
    if m.total:
        out["outcomes"] = charts.bar_chart(
            list(OUTCOMES),
            [m.candidate, m.confirmed, m.rejected, m.expired, m.annulled, m.erased],
            title="Matches by outcome",
            ylabel="matches",
            colours=[charts.OUTCOME_COLOURS[k] for k in OUTCOMES],
            integer=True,
        )
        out["periods"] = charts.stacked_bar_chart(
            [p.period for p in report.periods],
            {k: [getattr(p, k) for p in report.periods] for k in OUTCOMES},
            title=f"Matches per {report.period_kind} by outcome",
            ylabel="matches",
            colours=charts.OUTCOME_COLOURS,
        )
    return {k: Markup(v) for k, v in out.items()}


def dpia_charts(report: DpiaReport) -> dict[str, Markup]:
    out = {"hours": "", "outcomes": ""}
    if any(c.identification_hours > 0 for c in report.cameras):
        out["hours"] = charts.bar_chart(
            [c.name for c in report.cameras],
            [round(c.identification_hours, 2) for c in report.cameras],
            title="Hours of identification per camera, to date",
            ylabel="hours",
            value_format="{:.2f}",
        )
    o = report.accuracy.observed
    if o.total:
        out["outcomes"] = charts.bar_chart(
            list(OUTCOMES),
            [o.candidate, o.confirmed, o.rejected, o.expired, o.annulled, o.erased],
            title="Matches by outcome, to date",
            ylabel="matches",
            colours=[charts.OUTCOME_COLOURS[k] for k in OUTCOMES],
            integer=True,
        )
    return {k: Markup(v) for k, v in out.items()}


def render_transparency_html(report: TransparencyReport) -> str:
    """The transparency report as one HTML page."""
    template = environment().get_template("transparency.html.j2")
    return template.render(r=report, charts=transparency_charts(report), outcomes=OUTCOMES)


def render_dpia_html(report: DpiaReport) -> str:
    """The DPIA draft as one HTML page, the DPO's fields marked."""
    template = environment().get_template("dpia.html.j2")
    return template.render(
        r=report, charts=dpia_charts(report), outcomes=OUTCOMES, lfw_caveat=LFW_CAVEAT
    )
