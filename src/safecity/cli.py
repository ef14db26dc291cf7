"""The ``safecity`` command: assembles the groups of :mod:`safecity.commands`.

Here are only the global options and the entry point, :func:`main`. Every failure
an operator can cause prints one line, ``error: …``, and exits with status 2;
nothing prints a traceback (``-v`` logs details instead).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from safecity.commands import alerts as alerts_commands
from safecity.commands import audit as audit_commands
from safecity.commands import authorisation as authorisation_commands
from safecity.commands import bench as bench_commands
from safecity.commands import cluster as cluster_commands
from safecity.commands import eval as eval_commands
from safecity.commands import hold as hold_commands
from safecity.commands import models as models_commands
from safecity.commands import report as report_commands
from safecity.commands import retention as retention_commands
from safecity.commands import review as review_commands
from safecity.commands import sample as sample_commands
from safecity.commands import subject as subject_commands
from safecity.commands import user as user_commands
from safecity.commands import watchlist as watchlist_commands
from safecity.commands.analyze import analyze_cmd, demo_cmd
from safecity.commands.common import err, state
from safecity.commands.events import events_cmd
from safecity.commands.run import run_cmd
from safecity.commands.serve import serve_cmd
from safecity.errors import SafecityError

app = typer.Typer(
    help="safecity: accountable video analytics for city camera networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models_commands.app, name="models")
app.add_typer(watchlist_commands.app, name="watchlist")
app.add_typer(eval_commands.app, name="eval")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(sample_commands.app, name="sample")
app.add_typer(authorisation_commands.app, name="authorisation")
app.add_typer(review_commands.app, name="review")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(subject_commands.app, name="subject")
app.add_typer(retention_commands.app, name="retention")
app.add_typer(hold_commands.app, name="hold")
app.add_typer(report_commands.app, name="report")
app.add_typer(user_commands.app, name="user")
app.add_typer(cluster_commands.app, name="cluster")
app.add_typer(alerts_commands.app, name="alerts")
# Top-level commands, in the order --help lists them.
app.command("serve")(serve_cmd)
app.command("enroll")(watchlist_commands.enroll_cmd)
app.command("analyze")(analyze_cmd)
app.command("run")(run_cmd)
app.command("events")(events_cmd)
app.command("demo")(demo_cmd)


@app.callback()
def _main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (default: built-in)")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="database URL (default: SQLite in SAFECITY_HOME)")
    ] = None,
    media: Annotated[Path | None, typer.Option(help="media folder for snapshots")] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            help="who is acting, for the audit trail (default: SAFECITY_USER, login)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log details")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state.reset(config, db, media, user)


def main() -> None:
    """Entry point: one clear line for every operator error, never a traceback."""
    from safecity.governance.audit import ORIGIN

    ORIGIN.set(_origin())
    try:
        code = app(standalone_mode=False)
        _sign_audit_head()
    except SafecityError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except ValidationError as exc:
        err.print(f"error: {_validation_message(exc)}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors come from the click that typer vendors: they know how to show
        # themselves (one usage line and the problem) and their exit code.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            err.print("interrupted")
            sys.exit(130)
        if logging.getLogger().isEnabledFor(logging.INFO):  # -v: the details, for a bug report
            logging.getLogger("safecity").exception("internal error")
        err.print(
            f"error: internal error ({type(exc).__name__}: {exc}); run with -v for details",
            markup=False,
            highlight=False,
        )
        sys.exit(1)
    # With standalone_mode off, typer returns (not raises) the code of typer.Exit,
    # including 130 for an interrupt it caught.
    sys.exit(code or 0)


def _origin() -> str:
    """The command line as an audit origin: the OS login and the host, whatever --user says."""
    import getpass
    import socket

    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = f"uid {os.getuid()}"
    return f"cli {login}@{socket.gethostname()}"


def _sign_audit_head() -> None:
    """After a command that used the store, sign the audit chain's head if it moved.

    A failure here does not undo the command; it is reported, and the next
    command or ``safecity run`` signs again.
    """
    if state._store is None:
        return
    try:
        state.signer().sign(state.store())
    except SafecityError as exc:
        err.print(f"warning: the audit head was not signed: {exc}", markup=False)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )
