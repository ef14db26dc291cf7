"""Small charts as inline SVG text, for reports a reader would rather look at than read.

Each function returns the ``<svg>`` element (no XML prologue) to paste into
HTML, or ``""`` when there is nothing to draw; nothing is written to disk.
Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot,
so no global figure state and no display needed), text stays text (searchable,
and small), and ids are salted per chart so several charts can share one page.

>>> svg = bar_chart(["gate-1", "market-2"], [3.5, 1.0], title="Hours", ylabel="hours")
>>> svg.startswith("<svg") and "gate-1" in svg
True
>>> bar_chart([], [], title="Hours", ylabel="hours")
''
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; the SVG backend draws itself

from matplotlib.figure import Figure  # noqa: E402 - after choosing the backend
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: Colours of match outcomes, fixed so every chart reads alike.
OUTCOME_COLOURS = {
    "candidate": "#9e9e9e",
    "confirmed": "#2e7d32",
    "rejected": "#c62828",
    "annulled": "#6a1b9a",
    "erased": "#757575",
    "expired": "#f9a825",
}
_DEFAULT = "#1565c0"


def _svg(fig: Figure, title: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"safecity:{title}"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # matplotlib names its groups figure_1, patch_1 … in every chart: make each
    # id unique to this chart, and its references (#id, url(#id)) with it.
    prefix = "c" + hashlib.sha1(title.encode()).hexdigest()[:8]
    text = re.sub(r'(id="|href="#|url\(#)([^")]+)', rf"\1{prefix}-\2", text)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return re.sub(r"^<svg ", f'<svg role="img" aria-label="{label}" ', text, count=1)


def _figure(n: int) -> Figure:
    width = min(9.0, max(4.0, 1.2 + 0.8 * n))
    return Figure(figsize=(width, 3.2), dpi=72, layout="constrained")


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    ylabel: str,
    colours: Sequence[str] | None = None,
    value_format: str = "{:g}",
    integer: bool = False,
) -> str:
    """One bar per label, each with its value written above it (``integer``: counts)."""
    if not labels:
        return ""
    fig = _figure(len(labels))
    ax = fig.add_subplot()
    x = range(len(labels))
    bars = ax.bar(x, values, color=list(colours) if colours else _DEFAULT, width=0.6)
    ax.bar_label(bars, labels=[value_format.format(v) for v in values], fontsize=8, padding=2)
    ax.set_xticks(list(x), list(labels), rotation=30 if len(labels) > 4 else 0, ha="right")
    _style(ax, title, ylabel, max(values, default=0), integer)
    return _svg(fig, title)


def stacked_bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str,
    colours: Mapping[str, str] | None = None,
) -> str:
    """One bar per category, stacked by series (e.g. matches per day by outcome)."""
    if not categories or not series:
        return ""
    fig = _figure(max(len(categories), 7))  # room for the legend
    ax = fig.add_subplot()
    x = list(range(len(categories)))
    bottom = [0.0] * len(categories)
    for name, values in series.items():
        colour = (colours or {}).get(name)
        ax.bar(x, values, bottom=bottom, label=name, color=colour, width=0.7)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, len(categories) // 12)  # at most a dozen tick labels
    ax.set_xticks(x[::step], list(categories)[::step], rotation=30, ha="right")
    ax.legend(fontsize=8, frameon=False, loc="upper left", ncols=min(3, len(series)))
    _style(ax, title, ylabel, max(bottom, default=0), integer=True)
    return _svg(fig, title)


def _style(ax, title: str, ylabel: str, top: float, integer: bool) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, top * 1.25 if top > 0 else 1)
    if integer:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
