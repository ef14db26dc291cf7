"""``safecity watchlist …``: authorised watchlists; ``safecity enroll``: put a person on one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safecity.commands import signin
from safecity.commands.common import (
    camera_list,
    jsonable,
    out,
    parse_time,
    print_json_rows,
    state,
)

app = typer.Typer(help="Authorised watchlists.", no_args_is_help=True)


@app.command("create")
def watchlist_create(
    name: str,
    authorisation: Annotated[
        int | None, typer.Option(help="an existing authorisation (instead of the fields below)")
    ] = None,
    legal_basis: Annotated[str, typer.Option(help="law and article authorising the use")] = "",
    authority: Annotated[str, typer.Option(help="issuing authority (court, agency)")] = "",
    reference: Annotated[str, typer.Option(help="reference of the decision or warrant")] = "",
    valid_from: Annotated[str | None, typer.Option(help="start of validity, ISO 8601")] = None,
    valid_until: Annotated[str | None, typer.Option(help="end of validity, ISO 8601")] = None,
    purpose: Annotated[str, typer.Option(help="purpose of the identification")] = "",
    cameras: Annotated[
        str | None, typer.Option(help="comma-separated camera names in scope (default: all)")
    ] = None,
    evidence_days: Annotated[
        int | None, typer.Option(min=1, help="days confirmed-match evidence may be kept")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="read your password from standard input (else it is asked); "
            "proposing an authorisation needs it",
        ),
    ] = False,
) -> None:
    """Create a watchlist under an authorisation, or propose one with it (with your password).

    A proposed authorisation matches nothing until a reviewer other than you approves
    it (safecity authorisation approve ID): you prove who you are exactly as
    ``safecity authorisation propose`` asks.
    """
    from safecity.identity.watchlists import create_watchlist

    by = (
        state.actor()
        if authorisation is not None
        else signin.decider(password_stdin, "propose an authorisation")
    )
    watchlist = create_watchlist(
        state.store(),
        name=name,
        by=by,
        authorisation=authorisation,
        legal_basis=legal_basis,
        authority=authority,
        reference=reference,
        purpose=purpose,
        valid_from=parse_time(valid_from, "--valid-from"),
        valid_until=parse_time(valid_until, "--valid-until"),
        cameras=camera_list(cameras),
        evidence_days=evidence_days or state.config().authorisations.default_evidence_days,
    )
    out.print(
        f"watchlist '{name}' created (id {watchlist.id}) under authorisation "
        f"{watchlist.authorisation_id} ({watchlist.status})"
    )
    if watchlist.status == "proposed":
        out.print(
            f"nothing matches until a reviewer other than {by} approves it: "
            f"safecity authorisation approve {watchlist.authorisation_id}"
        )


@app.command("remove-person")
def watchlist_remove_person(
    watchlist: str,
    person: Annotated[str, typer.Option(help="name of the person to remove")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")],
) -> None:
    """Remove a person and their templates from a watchlist."""
    from safecity.identity.enrol import remove_person

    removed = remove_person(state.store(), watchlist, person, by=state.actor(), reason=reason)
    out.print(f"removed '{person}' from '{watchlist}' ({removed} template(s) deleted)")


@app.command("list")
def watchlist_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List watchlists with their authorisation and whether it is valid now."""
    from safecity.identity.watchlists import list_watchlists

    rows = list_watchlists(state.store())
    if as_json:
        print_json_rows(rows)
        return
    table = Table(
        "name",
        "legal basis",
        "authority",
        "reference",
        "valid from",
        "valid until",
        "cameras",
        "persons",
        "status",
    )
    for r in rows:
        d = jsonable(r)
        table.add_row(
            str(d.get("name")),
            str(d.get("legal_basis")),
            str(d.get("authority")),
            str(d.get("reference")),
            str(d.get("valid_from")),
            str(d.get("valid_until")),
            ", ".join(d.get("cameras") or []) or "all",
            str(d.get("persons", "")),
            str(d.get("status")),
        )
    out.print(table)


def enroll_cmd(
    watchlist: str,
    person: Annotated[str, typer.Option(help="name of the person to enrol")],
    images: Annotated[list[Path], typer.Argument(help="photos with exactly one face each")],
) -> None:
    """Enrol a person on a watchlist from photos. Any refused photo stores nothing."""
    from safecity.identity.enrol import enroll
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    config = state.config()
    result = enroll(
        state.store(),
        watchlist,
        person,
        images,
        detector=FaceDetector(config.faces),
        embedder=make_embedder(config.embedder),
        by=state.actor(),
    )
    out.print(f"enrolled '{person}' on '{watchlist}': {result.templates} template(s) stored")
