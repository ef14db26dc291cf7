"""``safecity watchlist …``: authorised watchlists; ``safecity enroll``: put a person on one."""

from __future__ import annotations

import json
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
    kind: Annotated[
        str,
        typer.Option(help="face (persons, from photos) or plate (vehicles, by licence plate)"),
    ] = "face",
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
        kind=kind,
    )
    out.print(
        f"{watchlist.kind} watchlist '{name}' created (id {watchlist.id}) under authorisation "
        f"{watchlist.authorisation_id} ({watchlist.status})"
    )
    if watchlist.status == "proposed":
        out.print(
            f"nothing matches until a reviewer other than {by} approves it: "
            f"safecity authorisation approve {watchlist.authorisation_id}"
        )


@app.command("add-plate")
def watchlist_add_plate(
    watchlist: str,
    plate: Annotated[str, typer.Argument(help="the licence plate, e.g. OY09FEU")],
    name: Annotated[
        str,
        typer.Option(help='what the vehicle is and why, e.g. "stolen silver Skoda, case 4411"'),
    ],
) -> None:
    """List a vehicle by licence plate on a plate watchlist (audited; you may not review
    its hits). Remove it with remove-person --person NAME."""
    from safecity.identity.plate_lists import add_plate

    result = add_plate(
        state.store(),
        watchlist,
        plate,
        name=name,
        by=state.actor(),
        countries=state.config().plates.countries,
    )
    if result.added:
        out.print(f"listed {result.plate} on '{result.watchlist_name}' as '{result.name}'")
    else:
        out.print(
            f"{result.plate} was already listed on '{result.watchlist_name}' as '{result.name}'"
        )


@app.command("remove-person")
def watchlist_remove_person(
    watchlist: str,
    person: Annotated[str, typer.Option(help="name of the person to remove")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")],
) -> None:
    """Remove a person and their templates (or a listed vehicle and its plates) from a watchlist."""
    from safecity.identity.enrol import remove_person

    removed = remove_person(state.store(), watchlist, person, by=state.actor(), reason=reason)
    out.print(f"removed '{person}' from '{watchlist}' ({removed} template(s) deleted)")


@app.command("list")
def watchlist_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List watchlists with their authorisation and whether it is valid now."""
    from safecity.identity.reembed import persons_without_templates
    from safecity.identity.watchlists import list_watchlists
    from safecity.vision.embedder import embedder_name

    store = state.store()
    rows = list_watchlists(store)
    embedder = embedder_name(state.config().embedder)
    # Persons without a template of the configured embedder are never matched.
    missing = persons_without_templates(store, embedder)
    if as_json:
        rows_out = [
            {**jsonable(r), "embedder": embedder, "persons_without_template": missing.get(r.id, 0)}
            for r in rows
        ]
        print(json.dumps(rows_out, default=str))
        return
    table = Table(
        "name",
        "kind",
        "legal basis",
        "authority",
        "reference",
        "valid from",
        "valid until",
        "cameras",
        "persons",
        f"without {embedder} template",
        "status",
    )
    for r in rows:
        d = jsonable(r)
        table.add_row(
            str(d.get("name")),
            str(d.get("kind")),
            str(d.get("legal_basis")),
            str(d.get("authority")),
            str(d.get("reference")),
            str(d.get("valid_from")),
            str(d.get("valid_until")),
            ", ".join(d.get("cameras") or []) or "all",
            str(d.get("persons", "")),
            str(missing.get(r.id, 0)),
            str(d.get("status")),
        )
    out.print(table)
    gap = sum(missing.values())
    if gap:
        out.print(
            f"{gap} enrolled person(s) have no template for the configured embedder "
            f"{embedder} and are never matched: run safecity watchlist reembed"
        )


@app.command("reembed")
def watchlist_reembed(
    watchlist: Annotated[
        str | None, typer.Argument(help="only this watchlist (default: every watchlist)")
    ] = None,
) -> None:
    """Add templates for the configured embedder from each person's kept face photos.

    Run after changing embedder.kind: persons enrolled under another embedder
    are not matched until then. Persons none of whose photos can be used are
    listed as needing re-enrolment from new photos (exit status 1).
    """
    from safecity.identity.reembed import reembed
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    config = state.config()
    result = reembed(
        state.store(),
        FaceDetector(config.faces),
        make_embedder(config.embedder),
        by=state.actor(),
        watchlist=watchlist,
    )
    counts: dict[str, int] = {}
    for person in result.persons:
        counts[person.status] = counts.get(person.status, 0) + 1
    out.print(
        f"embedder {result.embedder}: {result.added} template(s) added; "
        + (", ".join(f"{n} person(s) {status}" for status, n in counts.items()) or "no person")
    )
    for person in result.persons:
        if person.problems and person.status != "needs re-enrolment":
            out.print(
                f"  '{person.person_name}' ({person.watchlist}): " + "; ".join(person.problems)
            )
    for sentence in result.refused:
        out.print(f"not re-embedded: {sentence}")
    if result.needs_reenrolment:
        out.print("needs re-enrolment (enrol new photos with safecity enroll):")
        for person in result.needs_reenrolment:
            out.print(
                f"  '{person.person_name}' on '{person.watchlist}': " + "; ".join(person.problems)
            )
    if result.needs_reenrolment or result.refused:
        raise typer.Exit(1)


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
