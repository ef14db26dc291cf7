"""``safecity review …``: the four-eyes review queue of candidate matches."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands import signin
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
            _evidence(r),
        )
    out.print(table)


def _evidence(candidate) -> str:
    """The match snapshot; for a plate hit also the plate read (its crop) beside the listed."""
    if not candidate.listed_plates:
        return candidate.match_snapshot_path or ""
    return (
        f"{candidate.match_snapshot_path or ''}\nplate read {candidate.plate_text} "
        f"({candidate.plate_crop_path or 'no crop'}), listed {', '.join(candidate.listed_plates)}"
    )


_PASSWORD_STDIN = typer.Option(
    "--password-stdin", help="read your password from standard input (else it is asked)"
)


def _decide(event_id: int, decision: str, note: str, password_stdin: bool) -> None:
    from safecity.access.duties import review

    reviewer = signin.decider(password_stdin, f"{decision} event {event_id}")
    state_ = review(
        state.store(),
        event_id,
        decider=reviewer,
        decision=decision,
        note=note,
        required=state.config().review.required_confirmations,
    )
    if not state_.counted:
        out.print(f"{reviewer} had already confirmed event {event_id}: counted once")
    out.print(f"event {event_id}: {state_.describe()}")


@app.command("confirm")
def confirm_cmd(
    event_id: int,
    note: Annotated[str, typer.Option()] = "",
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Confirm a candidate match as a reviewer, with your password (counts once per reviewer)."""
    _decide(event_id, "confirm", note, password_stdin)


@app.command("reject")
def reject_cmd(
    event_id: int,
    note: Annotated[str, typer.Option(help="why it is a false match")] = "",
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Reject a candidate as a false match, with your password; its evidence is deleted."""
    _decide(event_id, "reject", note, password_stdin)
