"""``safecity events``: list stored events (an audited search)."""

from __future__ import annotations

from typing import Annotated

import typer

from safecity.commands.common import (
    FitTable,
    day_and_times,
    jsonable,
    out,
    parse_time,
    print_json_rows,
    state,
)

#: Columns of the events table, and those left out, in this order, on a narrow terminal
#: (the snapshot path is long: ``analyze`` prints the media folder under the table).
EVENT_COLUMNS = ["id", "camera", "track", "label", "start", "end", "score", "match", "snapshot"]
EVENT_COLUMNS_DROPPED = ("track", "score", "snapshot")


def events_table(rows) -> FitTable:
    """Events as a table (events, analyze, demo): times as HH:MM:SS under their date when
    all rows share one; track, score and snapshot left out when the terminal is narrow."""
    dicts = [jsonable(r) for r in rows]
    day, times = day_and_times([v for d in dicts for v in (d.get("started_at"), d.get("ended_at"))])
    cells = []
    for n, d in enumerate(dicts):
        match = ""
        if d.get("person_name"):
            match = (
                f"{d['person_name']} / {d.get('watchlist_name')} ({d.get('match_score', 0):.2f}) "
                f"{(d.get('match_status') or '').upper()}"
            )
        elif d.get("match_status"):
            match = f"{d['match_status']} match"
        cells.append(
            [
                str(d.get("id")),
                str(d.get("camera")),
                str(d.get("track_id")),
                str(d.get("label")),
                times[2 * n],
                times[2 * n + 1],
                f"{d.get('best_score', 0):.2f}",
                match,
                str(d.get("snapshot_path") or ""),
            ]
        )
    return FitTable(
        EVENT_COLUMNS,
        cells,
        drop=EVENT_COLUMNS_DROPPED,
        wrap=("match",),
        soft=("start", "end"),
        title=day,
    )


def events_cmd(
    camera: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    person: Annotated[str | None, typer.Option(help="matched person's name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List stored events, newest first."""
    from safecity.governance.audit import record
    from safecity.store.queries import list_events

    store = state.store()
    filters = {"camera": camera, "label": label, "since": since, "person": person, "limit": limit}
    rows = list_events(
        store,
        camera=camera,
        label=label,
        since=parse_time(since, "--since"),
        person=person,
        limit=limit,
    )
    # Searching stored events is an audited use of personal data.
    record(
        store,
        actor=state.actor(),
        action="search.events",
        object="events",
        details={
            "filters": {k: v for k, v in filters.items() if v is not None},
            "found": len(rows),
        },
    )
    if as_json:
        print_json_rows(rows)
    else:
        out.print(events_table(rows))
