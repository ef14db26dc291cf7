"""``safecity authorisation …``: propose, approve, refuse, revoke, emergency use, file, list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands import signin
from safecity.commands.common import (
    camera_list,
    out,
    parse_time,
    print_json_rows,
    short_time,
    state,
)

app = typer.Typer(
    help="Legal authorisations: two users, a legal basis, a window, a camera scope.",
    no_args_is_help=True,
)
#: Proposing, starting an emergency use, filing, approving and refusing are done by a
#: user who proves who they are: the approver is checked against the others.
_PASSWORD_STDIN = typer.Option(
    "--password-stdin", help="read your password from standard input (else it is asked)"
)


def _show(info) -> None:
    cameras = ", ".join(info.cameras) if info.cameras else "all cameras"
    out.print(
        f"authorisation {info.id}: {info.status}; {info.legal_basis or '(request not filed)'} "
        f"/ {info.authority or '-'} / {info.reference or '-'}; {cameras}; "
        f"{short_time(info.valid_from)} → {short_time(info.valid_until)}"
    )
    if info.status == "proposed":
        out.print(f"a reviewer other than {info.proposed_by} must approve it before any matching")
    if info.status == "emergency" and info.request_filed_at is None:
        out.print(f"file the request before {short_time(info.emergency_deadline_at)} UTC")


@app.command("propose")
def propose_cmd(
    legal_basis: Annotated[str, typer.Option(help="law and article authorising the use")],
    authority: Annotated[str, typer.Option(help="issuing authority (court, agency)")],
    reference: Annotated[str, typer.Option(help="reference of the decision or warrant")],
    purpose: Annotated[str, typer.Option(help="purpose of the identification")],
    valid_from: Annotated[str, typer.Option(help="start of validity, ISO 8601")],
    valid_until: Annotated[str, typer.Option(help="end of validity, ISO 8601")],
    cameras: Annotated[
        str | None, typer.Option(help="comma-separated camera names in scope (default: all)")
    ] = None,
    evidence_days: Annotated[
        int | None, typer.Option(min=1, help="days confirmed-match evidence may be kept")
    ] = None,
    renews: Annotated[int | None, typer.Option(help="id of the authorisation this renews")] = None,
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Propose an authorisation, with your password; a reviewer must approve it."""
    from safecity.governance.authorisations import propose

    policy = state.config().authorisations
    by = signin.decider(password_stdin, "propose an authorisation")
    _show(
        propose(
            state.store(),
            by=by,
            legal_basis=legal_basis,
            authority=authority,
            reference=reference,
            purpose=purpose,
            valid_from=parse_time(valid_from, "--valid-from"),
            valid_until=parse_time(valid_until, "--valid-until"),
            cameras=camera_list(cameras),
            evidence_days=evidence_days or policy.default_evidence_days,
            renews=renews,
        )
    )


@app.command("approve")
def approve_cmd(
    authorisation_id: int,
    note: Annotated[str, typer.Option(help="approval note")] = "",
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Approve a proposal or a filed emergency request as a reviewer, with your password.

    Not your own, nor one proposed, started or filed by someone who set up your
    account, whose account you set up, or who shares a sponsor with you.
    """
    from safecity.access.duties import approve

    by = signin.decider(password_stdin, f"approve authorisation {authorisation_id}")
    _show(approve(state.store(), authorisation_id, decider=by, note=note))


@app.command("refuse")
def refuse_cmd(
    authorisation_id: int,
    reason: Annotated[str, typer.Option(help="why it is refused")],
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Refuse a proposal or an emergency request as a reviewer, with your password.

    An emergency use's results are deleted.
    """
    from safecity.access.duties import refuse

    by = signin.decider(password_stdin, f"refuse authorisation {authorisation_id}")
    _show(refuse(state.store(), authorisation_id, decider=by, reason=reason))


@app.command("revoke")
def revoke_cmd(
    authorisation_id: int, reason: Annotated[str, typer.Option(help="why it stops")]
) -> None:
    """Stop an authorisation now; matching under it stops at once."""
    from safecity.governance.authorisations import revoke

    _show(revoke(state.store(), authorisation_id, by=state.actor(), reason=reason))


@app.command("emergency")
def emergency_cmd(
    purpose: Annotated[str, typer.Option(help="purpose of the identification")],
    reason: Annotated[str, typer.Option(help="why it cannot wait for approval")],
    valid_until: Annotated[str, typer.Option(help="end of the use, ISO 8601")],
    cameras: Annotated[
        str | None, typer.Option(help="comma-separated camera names in scope (default: all)")
    ] = None,
    evidence_days: Annotated[int | None, typer.Option(min=1)] = None,
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Start an emergency use before approval, with your password; file it by the deadline."""
    from safecity.governance.authorisations import start_emergency

    policy = state.config().authorisations
    by = signin.decider(password_stdin, "start an emergency use")
    _show(
        start_emergency(
            state.store(),
            by=by,
            purpose=purpose,
            reason=reason,
            valid_until=parse_time(valid_until, "--valid-until"),
            cameras=camera_list(cameras),
            deadline_h=policy.emergency_deadline_h,
            evidence_days=evidence_days or policy.default_evidence_days,
        )
    )


@app.command("file")
def file_cmd(
    authorisation_id: int,
    legal_basis: Annotated[str, typer.Option()],
    authority: Annotated[str, typer.Option()],
    reference: Annotated[str, typer.Option()],
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """File the authorisation request of an emergency use, with your password."""
    from safecity.governance.authorisations import file_request

    by = signin.decider(password_stdin, f"file authorisation {authorisation_id}")
    _show(
        file_request(
            state.store(),
            authorisation_id,
            by=by,
            legal_basis=legal_basis,
            authority=authority,
            reference=reference,
        )
    )


@app.command("list")
def list_cmd(
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every authorisation with its status, window, scope and watchlists."""
    from safecity.governance.authorisations import list_authorisations

    rows = list_authorisations(state.store(), status)
    if as_json:
        print_json_rows(rows)
        return
    table = Table(
        "id",
        "status",
        "legal basis",
        "reference",
        "from",
        "until",
        "cameras",
        "watchlists",
        "proposed by",
        "decided by",
    )
    for r in rows:
        table.add_row(
            str(r.id),
            r.status,
            r.legal_basis,
            r.reference,
            short_time(r.valid_from),
            short_time(r.valid_until),
            ", ".join(r.cameras) if r.cameras else "all",
            ", ".join(r.watchlists),
            r.proposed_by,
            r.decided_by or "",
        )
    out.print(table)
