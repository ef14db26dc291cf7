"""``safecity hold …``: legal holds that keep a confirmed match's evidence for a case."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import out, print_json_rows, short_time, state

app = typer.Typer(help="Legal holds on confirmed matches.", no_args_is_help=True)


@app.command("place")
def place_cmd(
    event_id: int,
    case: Annotated[str, typer.Option("--case", help="case reference the evidence is kept for")],
) -> None:
    """Keep a confirmed match's evidence past retention for a case (audited)."""
    from safecity.governance.holds import place_hold

    hold = place_hold(state.store(), event_id, case_ref=case, by=state.actor())
    out.print(
        f"hold {hold.id} placed on event {event_id} for case {hold.case_ref}",
        markup=False,
        highlight=False,
    )


@app.command("release")
def release_cmd(
    hold_id: int,
    reason: Annotated[str, typer.Option(help="why the evidence is no longer needed")],
) -> None:
    """Release a hold; ordinary retention applies again from the next run (audited)."""
    from safecity.governance.holds import release_hold

    hold = release_hold(state.store(), hold_id, by=state.actor(), reason=reason)
    out.print(
        f"hold {hold.id} on event {hold.event_id} (case {hold.case_ref}) released",
        markup=False,
        highlight=False,
    )


@app.command("list")
def list_cmd(
    include_released: Annotated[bool, typer.Option("--all", help="include released holds")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Legal holds, oldest first (active ones unless --all)."""
    from safecity.governance.holds import list_holds

    rows = list_holds(state.store(), include_released=include_released)
    if as_json:
        print_json_rows(rows)
        return
    table = Table("hold", "event", "case", "placed by", "placed at", "released by", "released at")
    for r in rows:
        table.add_row(
            str(r.id),
            str(r.event_id),
            r.case_ref,
            r.placed_by,
            short_time(r.placed_at),
            r.released_by or "",
            short_time(r.released_at),
        )
    out.print(table)
