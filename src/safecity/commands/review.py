"""``safecity review …``: the four-eyes review queue of candidate matches."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import out, print_json_rows, short_time, state

app = typer.Typer(help="Four-eyes review of candidate matches.", no_args_is_help=True)


@app.command("queue")
def queue_cmd(
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Candidate matches awaiting review, oldest first."""
    from safecity.governance.audit import record
    from safecity.governance.review import review_queue

    store = state.store()
    rows = review_queue(store, limit=limit)
    record(
        store,
        actor=state.actor(),
        action="search.review_queue",
        object="review-queue",
        details={"limit": limit, "found": len(rows)},
    )
    required = state.config().review.required_confirmations
    if as_json:
        print_json_rows(rows)
        return
    table = Table(
        "event", "camera", "time", "person", "watchlist", "score", "confirmed", "evidence"
    )
    for r in rows:
        table.add_row(
            str(r.event_id),
            r.camera,
            short_time(r.started_at),
            r.person_name or "",
            r.watchlist_name or "",
            f"{r.score:.3f}" if r.score is not None else "",
            f"{len(r.confirmed_by)}/{required} {', '.join(r.confirmed_by)}".strip(),
            r.match_snapshot_path or "",
        )
    out.print(table)


def _decide(event_id: int, decision: str, note: str) -> None:
    from safecity.governance.review import review_match

    state_ = review_match(
        state.store(),
        event_id,
        by=state.actor(),
        decision=decision,  # type: ignore[arg-type]
        note=note,
        required=state.config().review.required_confirmations,
    )
    if not state_.counted:
        out.print(f"{state.actor()} had already confirmed event {event_id}: counted once")
    out.print(f"event {event_id}: {state_.describe()}")


@app.command("confirm")
def confirm_cmd(event_id: int, note: Annotated[str, typer.Option()] = "") -> None:
    """Confirm a candidate match (counts once per reviewer)."""
    _decide(event_id, "confirm", note)


@app.command("reject")
def reject_cmd(
    event_id: int, note: Annotated[str, typer.Option(help="why it is a false match")] = ""
) -> None:
    """Reject a candidate as a false match; its evidence is deleted at once."""
    _decide(event_id, "reject", note)
