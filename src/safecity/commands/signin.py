"""Who acts on the command line, proven: a password (or, for account work, an API token).

``--user`` (or ``SAFECITY_USER``, or the login name) says who acts; the acts
that need a second person — review decisions, approving or refusing an
authorisation — and proposals they are checked against, and every change to
accounts, must prove it: the account's password, asked without echo on a
terminal or read as one line of standard input with ``--password-stdin``.
Account work may instead use an API token of an enabled admin in
``SAFECITY_TOKEN``; decisions never do (an admin can make a token for anyone).
The rules themselves are in :mod:`safecity.access.duties`.
"""

from __future__ import annotations

import getpass
import os
import sys

from safecity.commands.common import state
from safecity.errors import ConfigError

TOKEN_ENV = "SAFECITY_TOKEN"


def stdin_line(what: str) -> str:
    """The next line of standard input (``--password-stdin``), or an error naming it."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise ConfigError(f"--password-stdin: no {what} on standard input")
    return line


def ask(what: str, from_stdin: bool) -> str:
    """A secret from standard input (scripts) or asked once without echo (a terminal)."""
    if from_stdin:
        return stdin_line(what)
    if not sys.stdin.isatty():
        raise ConfigError(f"no terminal to ask for the {what}; give --password-stdin")
    try:
        secret = getpass.getpass(f"{what}: ")
    except EOFError:
        secret = ""
    if not secret:
        raise ConfigError(f"no {what} given")
    return secret


def new_password(from_stdin: bool) -> str:
    """A new password: the next line of standard input, or asked twice on a terminal."""
    if from_stdin:
        return stdin_line("new password")
    first = ask("new password", False)
    if ask("new password again", False) != first:
        raise ConfigError("the two passwords differ")
    return first


def decider(from_stdin: bool, purpose: str) -> str:
    """The acting user, proven by their password (no token): for decisions and proposals."""
    from safecity.access.duties import authenticate

    username = state.actor()
    password = ask(f"password of {username}", from_stdin)
    return authenticate(state.store(), username, password, purpose=purpose).username


def admin(from_stdin: bool, purpose: str) -> tuple[str, list[str]]:
    """An enabled admin, by password or ``SAFECITY_TOKEN``: (name, whoever made the token)."""
    from safecity.access.duties import authenticate, token_creator
    from safecity.access.roles import Permission
    from safecity.access.sessions import resolve_token

    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        principal = resolve_token(state.store(), token)
        if principal is None:
            raise ConfigError(f"{TOKEN_ENV} is not a valid API token (revoked or expired?)")
        name, also = principal.username, token_creator(principal)
        if not principal.can(Permission.MANAGE_USERS):
            raise ConfigError(f"{name} is not an admin; only an admin may {purpose}")
        return name, also
    username = state.actor()
    password = ask(f"password of {username}", from_stdin)
    info = authenticate(state.store(), username, password, purpose=purpose)
    if not info.principal().can(Permission.MANAGE_USERS):
        raise ConfigError(f"{username} is not an admin; only an admin may {purpose}")
    return info.username, []


def os_login() -> str:
    """The operating system's login name (who made the first admin)."""
    try:
        return getpass.getuser() or f"uid {os.getuid()}"
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
