"""``safecity events``: list stored events (an audited search)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import jsonable, out, parse_time, print_json_rows, short_time, state


def events_table(rows) -> Table:
    """Events as a table (events, analyze, demo)."""
    table = Table("id", "camera", "track", "label", "start", "end", "score", "match", "snapshot")
    for r in rows:
        d = jsonable(r)
        match = ""
        if d.get("person_name"):
            match = (
                f"{d['person_name']} / {d.get('watchlist_name')} ({d.get('match_score', 0):.2f}) "
                f"{(d.get('match_status') or '').upper()}"
            )
        elif d.get("match_status"):
            match = f"{d['match_status']} match"
        table.add_row(
            str(d.get("id")),
            str(d.get("camera")),
            str(d.get("track_id")),
            str(d.get("label")),
            short_time(d.get("started_at")),
            short_time(d.get("ended_at")),
            f"{d.get('best_score', 0):.2f}",
            match,
            str(d.get("snapshot_path") or ""),
        )
    return table


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
