"""``safecity report``: the draft DPIA and the transparency report (HTML, or JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from safecity.commands.common import err, out, parse_time, state
from safecity.errors import ConfigError

app = typer.Typer(help="Accountability reports: DPIA draft, transparency.", no_args_is_help=True)

OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="write to this file (default: standard output)")
]


def _emit(text: str, destination: Path | None) -> None:
    """Print ``text``, or write it to ``destination`` whole (never half a file)."""
    if destination is None:
        out.file.write(text)
        out.file.flush()
        return
    from safecity.store.media import write_atomically

    destination = destination.expanduser()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(destination, text)
    except OSError as error:
        raise ConfigError(f"cannot write {destination}: {error.strerror or error}") from None
    err.print(f"wrote {destination}")


@app.command("dpia")
def dpia_cmd(out_file: OutOption = None) -> None:
    """Draft a data-protection impact assessment from the live configuration and records."""
    from safecity.governance.reports import gather_dpia, record_export, render_dpia_html

    actor = state.actor()
    store = state.store()
    report = gather_dpia(store, state.config(), by=actor)
    html = render_dpia_html(report)
    record_export(store, by=actor, report="dpia", file=out_file)
    _emit(html, out_file)


@app.command("transparency")
def transparency_cmd(
    start: Annotated[str, typer.Option("--from", help="start of the period, ISO 8601 (UTC)")],
    end: Annotated[str, typer.Option("--to", help="end of the period (excluded), ISO 8601")],
    out_file: OutOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="the figures as JSON, not HTML")] = False,
) -> None:
    """Aggregate figures of identification over a period: hours, matches, requests, purges."""
    from safecity.governance.reports import (
        check_window,
        gather_transparency,
        record_export,
        render_transparency_html,
    )

    window_start, window_end = check_window(
        parse_time(start, "--from"),
        parse_time(end, "--to"),  # type: ignore[arg-type]
    )
    actor = state.actor()
    store = state.store()
    report = gather_transparency(store, state.config(), window_start, window_end, by=actor)
    text = (
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if as_json
        else render_transparency_html(report)
    )
    record_export(
        store,
        by=actor,
        report="transparency",
        start=window_start,
        end=window_end,
        file=out_file,
    )
    _emit(text, out_file)
