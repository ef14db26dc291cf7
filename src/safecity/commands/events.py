"""``safecity events``: list stored events (an audited search).

Searching by person (``--person``) or by licence plate (``--plate``) is an
identity search: once the store has user accounts, it takes an enabled account
whose role may see identities (the API's rule), proven by ``SAFECITY_TOKEN`` or
the account's password, and it covers that account's cameras only. A store with
no accounts yet is one operator's, who holds the database itself.
"""

from __future__ import annotations

from typing import Annotated

import typer

from safecity.commands.common import (
    FitTable,
    day_and_times,
    err,
    jsonable,
    out,
    parse_time,
    print_json_rows,
    state,
)

#: Columns of the events table, and those left out, in this order, on a narrow terminal
#: (the snapshot path is long: ``analyze`` prints the media folder under the table).
EVENT_COLUMNS = [
    "id", "camera", "track", "label", "plate", "start", "end", "score", "match", "snapshot",
]  # fmt: skip
EVENT_COLUMNS_DROPPED = ("track", "score", "snapshot", "plate")


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
                str(d.get("plate_text") or ""),
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


def identity_searcher(from_stdin: bool, what: str):
    """Who may search events by ``what`` (person, plate) on the command line.

    ``None`` while the store has no accounts (one operator's database); else the
    acting account as a :class:`~safecity.access.roles.Principal`, proven by
    ``SAFECITY_TOKEN`` or its password, whose role may see identities. Raises
    :class:`~safecity.errors.ConfigError` with the reason otherwise; nothing was searched.
    """
    import os

    from safecity.access.duties import authenticate
    from safecity.access.roles import Permission
    from safecity.access.sessions import resolve_token
    from safecity.access.users import count_users
    from safecity.commands.signin import TOKEN_ENV, ask
    from safecity.errors import ConfigError

    store = state.store()
    if count_users(store) == 0:
        return None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        principal = resolve_token(store, token)
        if principal is None:
            raise ConfigError(f"{TOKEN_ENV} is not a valid API token (revoked or expired?)")
    else:
        username = state.actor()
        password = ask(f"password of {username}", from_stdin)
        principal = authenticate(store, username, password, purpose=f"search events by {what}")
        principal = principal.principal(via="cli")
    if not principal.can(Permission.SEE_FACES):
        raise ConfigError(
            f"your role ({principal.role.value}) may not {Permission.SEE_FACES.value}, "
            f"so it cannot search events by {what}; nothing was searched"
        )
    return principal


def events_cmd(
    camera: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    person: Annotated[str | None, typer.Option(help="matched person's name")] = None,
    plate: Annotated[
        str | None,
        typer.Option(help="licence plate (spaces, dashes and case ignored): BA-123 XY"),
    ] = None,
    fuzzy: Annotated[
        bool, typer.Option("--fuzzy", help="with --plate: also plates one character off")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="read your password (--person, --plate) from standard input"
        ),
    ] = False,
) -> None:
    """List stored events, newest first."""
    from safecity.errors import ConfigError
    from safecity.governance.audit import record
    from safecity.store.queries import list_events, plate_query

    if fuzzy and plate is None:
        raise ConfigError("--fuzzy widens a --plate search; give --plate TEXT")
    key = plate_query(plate) if plate is not None else None
    searched = [what for what, value in (("person", person), ("plate", key)) if value]
    searcher = identity_searcher(password_stdin, " and ".join(searched)) if searched else None
    store = state.store()
    cameras = searcher.camera_filter() if searcher is not None else None
    if camera is not None and cameras is not None and camera not in cameras:
        cameras = frozenset()  # as the API: what you may not see answers like nothing
    rows = list_events(
        store,
        camera=camera,
        label=label,
        since=parse_time(since, "--since"),
        person=person,
        plate=key,
        fuzzy=fuzzy,
        cameras=cameras,
        limit=limit,
    )
    filters = {
        "camera": camera,
        "label": label,
        "since": since,
        "person": person,
        "plate": key,
        "fuzzy": fuzzy or None,
        "limit": limit,
    }
    # Searching stored events is an audited use of personal data.
    record(
        store,
        actor=searcher.username if searcher is not None else state.actor(),
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
    if key is not None and not rows:
        err.print(f"no vehicle with plate {key}" + (" or one character off" if fuzzy else ""))
