"""``safecity user …``: console and API accounts, roles, camera grants and API tokens.

Every change is made by an enabled admin who proves it (their password, or an
admin's API token in ``SAFECITY_TOKEN``), except the very first admin, made when
no enabled admin exists (recorded as a bootstrap by the OS login). With
``--password-stdin`` the acting admin's password is the first line of standard
input and a new password the next. ``user password NAME`` run as NAME changes
one's own password (the current one, then the new one): a password an admin set
is provisional and takes no decision until its owner has done so.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from safecity.commands import signin
from safecity.commands.common import camera_list, out, print_json_rows, short_time, state
from safecity.errors import ConfigError

app = typer.Typer(help="Users of the console and API, and API tokens.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for machines.", no_args_is_help=True)
app.add_typer(token_app, name="token")

_ROLE_HELP = "admin, operator, reviewer, auditor or viewer"
_CAMERAS_HELP = "cameras granted, comma-separated; '*' for all (admins see all anyway)"


def _role(text: str):
    from safecity.access.roles import parse_role

    try:
        return parse_role(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


_STDIN_HELP = "read passwords from standard input: yours (unless bootstrap/token), then the new one"
_ADMIN_STDIN_HELP = "read your password from standard input"


@app.command("add")
def add_cmd(
    username: str,
    role: Annotated[str, typer.Option(help=_ROLE_HELP)],
    cameras: Annotated[str | None, typer.Option(help=_CAMERAS_HELP)] = None,
    name: Annotated[str, typer.Option("--name", help="display name")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
) -> None:
    """Create a user (the first one must be an admin). Audited.

    Their password is provisional: they set their own before taking any decision.
    """
    from safecity.access.duties import enabled_admins
    from safecity.access.users import create_user

    role_value = _role(role)
    granted = camera_list(cameras)
    if granted is None and role_value.value != "admin":
        raise ConfigError(
            "--cameras: name the cameras this user may see (e.g. gate-1,square), or '*' for all"
        )
    bootstrap = enabled_admins(state.store()) == 0
    if bootstrap:
        if role_value.value != "admin":
            raise ConfigError(
                "there is no admin yet: the first account must be an admin "
                "(safecity user add NAME --role admin)"
            )
        by, also = signin.os_login(), []
    else:
        by, also = signin.admin(password_stdin, "add users")
    password = signin.new_password(password_stdin)
    user = create_user(
        state.store(),
        username,
        password,
        role_value,
        by=by,
        also_by=also,
        bootstrap=bootstrap,
        cameras=granted,
        display_name=name,
    )
    scope = (
        "every camera"
        if user.all_cameras or role_value.value == "admin"
        else ", ".join(user.cameras)
    )
    out.print(f"user {user.username} ({user.role.value}) created; cameras: {scope}")


@app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user with role, cameras and state."""
    from safecity.access.users import list_users

    users = list_users(state.store(), limit=10_000)
    if as_json:
        print_json_rows(users)
        return
    table = Table("user", "role", "cameras", "disabled", "created", "by")
    for u in users:
        table.add_row(
            u.username,
            u.role.value,
            "*" if u.all_cameras else ", ".join(u.cameras),
            "yes" if u.disabled else "",
            short_time(u.created_at),
            u.created_by,
        )
    out.print(table)


@app.command("set")
def set_cmd(
    username: str,
    role: Annotated[str | None, typer.Option(help=_ROLE_HELP)] = None,
    cameras: Annotated[str | None, typer.Option(help=_CAMERAS_HELP)] = None,
    disable: Annotated[bool, typer.Option("--disable", help="sign the user out for good")] = False,
    enable: Annotated[bool, typer.Option("--enable")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help=_ADMIN_STDIN_HELP)
    ] = False,
) -> None:
    """Change a user's role, camera grants, or disable/enable the account. Audited."""
    from safecity.access.users import update_user

    if disable and enable:
        raise ConfigError("--disable and --enable exclude each other")
    by, _ = signin.admin(password_stdin, "change users")
    user = update_user(
        state.store(),
        username,
        by=by,
        role=_role(role) if role else None,
        cameras=camera_list(cameras),
        set_cameras=cameras is not None,
        disabled=True if disable else False if enable else None,
    )
    scope = "*" if user.all_cameras else ", ".join(user.cameras)
    out.print(
        f"user {user.username}: {user.role.value}, cameras {scope or '(none)'}"
        f"{', disabled' if user.disabled else ''}"
    )


@app.command("password")
def password_cmd(
    username: str,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="read from standard input: your current password (or, for an admin's "
            "reset, the admin's), then the new one",
        ),
    ] = False,
) -> None:
    """Set a new password; the user's sessions end. Audited.

    Run as USERNAME (--user), it changes your own password, given the current one;
    run by an admin for someone else, it is a reset: provisional until they change it.
    """
    from safecity.access.duties import authenticate
    from safecity.access.users import change_own_password, get_user, set_password

    store = state.store()
    get_user(store, username)  # an unknown user is one error line before any prompt
    if state.actor() == username and not os.environ.get(signin.TOKEN_ENV):
        current = signin.ask(f"current password of {username}", password_stdin)
        authenticate(store, username, current, purpose="change their own password")
        change_own_password(store, username, current, signin.new_password(password_stdin))
        out.print("your password is changed (your own now); your sessions have ended")
        return
    by, also = signin.admin(password_stdin, "reset passwords")
    set_password(store, username, signin.new_password(password_stdin), by=by, also_by=also)
    out.print(
        f"password of {username} reset; their sessions have ended, and it is provisional "
        "until they set their own"
    )


@token_app.command("create")
def token_create_cmd(
    username: str,
    name: Annotated[str, typer.Option("--name", help="what uses the token (e.g. 'vms-bridge')")],
    expires_days: Annotated[float | None, typer.Option(help="valid this many days")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help=_ADMIN_STDIN_HELP)
    ] = False,
) -> None:
    """Create an API token acting as USERNAME; printed once, only its hash is kept."""
    from safecity.access.sessions import create_token

    by, _ = signin.admin(password_stdin, "create API tokens")
    text, info = create_token(state.store(), username, name, by=by, expires_days=expires_days)
    out.print(f"token {info.id} for {username} ({name}); keep it secret, it is not shown again:")
    print(text)


@token_app.command("list")
def token_list_cmd(
    username: Annotated[str | None, typer.Argument()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """API tokens (never their secrets)."""
    from safecity.access.sessions import list_tokens

    tokens = list_tokens(state.store(), username)
    if as_json:
        print_json_rows(tokens)
        return
    table = Table("id", "user", "name", "created", "expires", "last used", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.username,
            t.name,
            short_time(t.created_at),
            short_time(t.expires_at),
            short_time(t.last_used_at),
            short_time(t.revoked_at),
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke_cmd(
    token_id: int,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help=_ADMIN_STDIN_HELP)
    ] = False,
) -> None:
    """Revoke an API token at once. Audited."""
    from safecity.access.sessions import revoke_token

    by, _ = signin.admin(password_stdin, "revoke API tokens")
    revoke_token(state.store(), token_id, by=by)
    out.print(f"token {token_id} revoked")
