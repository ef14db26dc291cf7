"""``safecity audit …``: verify the chain, sign its head, read it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import (
    err,
    jsonable,
    out,
    parse_time,
    print_json_rows,
    short_time,
    state,
)

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the whole chain and the signed heads; exit 1 and name the first broken record."""
    report = state.signer().verify(state.store())
    if as_json:
        print(json.dumps(jsonable(report)))
    else:
        (out if report.ok else err).print(report.format(), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command("sign")
def sign_cmd() -> None:
    """Sign the newest record's hash now (also done by safecity run, periodically)."""
    head = state.signer().sign(state.store())
    if head is None:
        out.print("the audit trail is empty; nothing to sign")
    else:
        out.print(f"signed record {head.id} ({head.hash[:16]}…) into {state.signer().heads_path}")


@app.command("public-key")
def public_key_cmd() -> None:
    """Print the head-signing public key (keep a copy away from this machine)."""
    print(state.signer().public_key_pem(), end="")


@app.command("list")
def list_cmd(
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    actor: Annotated[str | None, typer.Option(help="only this user")] = None,
    action: Annotated[
        str | None, typer.Option(help="an action, or a prefix ending in '.' (review.)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Audit records, newest first."""
    from safecity.governance.audit import list_records

    rows = list_records(
        state.store(),
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        actor=actor,
        action=action,
        limit=limit,
    )
    if as_json:
        print_json_rows(rows)
        return
    table = Table("id", "time", "actor", "origin", "action", "object", "purpose", "details")
    for r in rows:
        table.add_row(
            str(r.id),
            short_time(r.at),
            r.actor,
            r.origin,
            r.action,
            r.object,
            r.purpose,
            json.dumps(r.details, ensure_ascii=False),
        )
    out.print(table)
