"""``safecity retention …``: enforce retention now (``safecity run`` also does, periodically)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import out, state

app = typer.Typer(help="Retention enforced by the system.", no_args_is_help=True)


@app.command("run")
def run_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Delete what retention says must go now, and audit the counts."""
    from safecity.governance.retention import run_retention

    report = run_retention(state.store(), state.config(), actor=state.actor())
    counts = report.as_dict()
    if as_json:
        print(json.dumps(counts))
        return
    table = Table("class", "count")
    for name, count in counts.items():
        table.add_row(name.replace("_", " "), str(count))
    out.print(table)
    out.print(report.describe(), markup=False, highlight=False)
