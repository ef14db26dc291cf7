"""``safecity subject``: subject-access and erasure requests (thin; see governance.subjects)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from safecity.commands.common import out, short_time, state

app = typer.Typer(
    help="Requests from the people concerned: what is held on them, report, erase.",
    no_args_is_help=True,
)


@app.command("find")
def find_cmd(
    image: Annotated[Path, typer.Option("--image", help="photo of the person, one face")],
    request_ref: Annotated[
        str, typer.Option("--request-ref", help="reference of the subject request")
    ],
    export: Annotated[
        Path | None, typer.Option("--export", help="write the report to FILE.html or FILE.json")
    ] = None,
    erase: Annotated[
        bool, typer.Option("--erase", help="erase the entries named by --person (needs --yes)")
    ] = False,
    person: Annotated[
        list[int] | None,
        typer.Option("--person", help="person id to erase, as confirmed from the report"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="confirm --erase")] = False,
) -> None:
    """Find what is held on the person in a photo; optionally report it and erase it."""
    from safecity.governance.subjects import (
        RetentionTerms,
        SubjectError,
        check_request_ref,
        erase_subject,
        export_findings,
        find_subject,
    )
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    ref = check_request_ref(request_ref)
    if erase and not yes:
        raise SubjectError(
            "--erase deletes the person's watchlist entries and match evidence for good; "
            "add --yes to confirm (nothing was searched)"
        )
    if erase and not person:
        raise SubjectError(
            "--erase needs --person ID for each entry confirmed, from a first search's report, "
            "to be the person (a search can also find a lookalike); nothing was searched"
        )
    if export is not None and export.suffix.lower() not in (".html", ".htm", ".json"):
        raise SubjectError(f"cannot export to {export}: name a .html or .json file")
    from safecity.identity.matcher import matcher_settings

    config = state.config()
    store = state.store()
    actor = state.actor()
    found = find_subject(
        store,
        image,
        request_ref=ref,
        detector=FaceDetector(config.faces),
        embedder=make_embedder(config.embedder),
        threshold=matcher_settings(config)[0],
        by=actor,
    )
    if not found.found:
        out.print(
            f"request {ref}: nothing held on the person in {image} "
            f"({found.templates_compared} template(s) compared)"
        )
    for entry in found.entries:
        out.print(
            f"watchlist '{entry.watchlist_name}': {entry.person_name} (person {entry.person_id}, "
            f"score {entry.best_score:.3f}, {entry.templates} template(s), enrolled "
            f"{short_time(entry.enrolled_at)} by {entry.enrolled_by}; "
            f"{entry.legal_basis or 'emergency use'}, ref {entry.reference or '-'})"
        )
        for e in entry.evidence:
            hold = "; HELD: " + ", ".join(h.case_ref for h in e.holds if h.active) if e.held else ""
            out.print(
                f"  event {e.event_id}: {e.camera} {short_time(e.started_at)} "
                f"score {e.score if e.score is not None else '-'} {e.status}{hold}"
            )
    if export is not None:
        result = export_findings(
            store, found, export, by=actor, terms=RetentionTerms.from_config(config)
        )
        out.print(f"report written to {result.path} ({result.format})")
    if erase:
        erased = erase_subject(store, found, person_ids=person or [], by=actor)
        out.print(
            f"erased: {erased.persons_deleted} watchlist entries, "
            f"{erased.templates_deleted} templates, {erased.events_erased} matches, "
            f"{erased.files_removed} files"
        )
        for w in erased.withheld:
            out.print(
                f"withheld: event {w.event_id} is under legal hold ({', '.join(w.case_refs)}); "
                "kept as the law requires"
            )
        if erased.persons_kept:
            out.print(
                "kept without templates (identity of withheld evidence): person(s) "
                + ", ".join(str(p) for p in erased.persons_kept)
            )
        for relative in erased.files_left:
            out.print(f"could not remove {relative} now; the retention sweep will")
