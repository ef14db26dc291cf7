"""``safecity user …``: console and API accounts, roles, camera grants and API tokens."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

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


def _password(from_stdin: bool) -> str:
    """From standard input (scripts) or asked twice without echo (people)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("--password-stdin: no password on standard input")
        return password
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def add_cmd(
    username: str,
    role: Annotated[str, typer.Option(help=_ROLE_HELP)],
    cameras: Annotated[str | None, typer.Option(help=_CAMERAS_HELP)] = None,
    name: Annotated[str, typer.Option("--name", help="display name")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a user (the first one is usually an admin). Audited."""
    from safecity.access.users import create_user

    role_value = _role(role)
    granted = camera_list(cameras)
    if granted is None and role_value.value != "admin":
        raise ConfigError(
            "--cameras: name the cameras this user may see (e.g. gate-1,square), or '*' for all"
        )
    password = _password(password_stdin)
    user = create_user(
        state.store(),
        username,
        password,
        role_value,
        by=state.actor(),
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
) -> None:
    """Change a user's role, camera grants, or disable/enable the account. Audited."""
    from safecity.access.users import update_user

    if disable and enable:
        raise ConfigError("--disable and --enable exclude each other")
    user = update_user(
        state.store(),
        username,
        by=state.actor(),
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
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a new password; the user's console sessions end. Audited."""
    from safecity.access.users import set_password

    set_password(state.store(), username, _password(password_stdin), by=state.actor())
    out.print(f"password of {username} changed; their sessions have ended")


@token_app.command("create")
def token_create_cmd(
    username: str,
    name: Annotated[str, typer.Option("--name", help="what uses the token (e.g. 'vms-bridge')")],
    expires_days: Annotated[float | None, typer.Option(help="valid this many days")] = None,
) -> None:
    """Create an API token acting as USERNAME; printed once, only its hash is kept."""
    from safecity.access.sessions import create_token

    text, info = create_token(
        state.store(), username, name, by=state.actor(), expires_days=expires_days
    )
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
def token_revoke_cmd(token_id: int) -> None:
    """Revoke an API token at once. Audited."""
    from safecity.access.sessions import revoke_token

    revoke_token(state.store(), token_id, by=state.actor())
    out.print(f"token {token_id} revoked")
