"""``safecity sample …``: sample media from registry packages."""

from __future__ import annotations

import typer

from safecity.commands.common import out

app = typer.Typer(help="Sample media from registry packages.", no_args_is_help=True)


@app.command("fetch")
def sample_fetch() -> None:
    """Fetch vtest.avi from Debian's opencv-doc package; print its path."""
    from safecity.samples import fetch_sample

    out.print(str(fetch_sample("vtest")))
