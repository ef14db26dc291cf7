"""``safecity bench …``: speed benchmarks that print figures."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import out, state

app = typer.Typer(help="Speed benchmarks that print figures.", no_args_is_help=True)


@app.command("audit")
def bench_audit_cmd(
    records: Annotated[int, typer.Option(min=10, help="records to append")] = 5000,
    url: Annotated[
        str | None, typer.Option(help="an EMPTY database to use (default: scratch SQLite)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Milliseconds to append an audit record; records per second to verify the chain."""
    from safecity.bench import bench_audit

    result = bench_audit(url, records)
    if as_json:
        print(json.dumps(result))
        return
    out.print(
        f"{result['records']} records on {result['backend']}: append median "
        f"{result['append_median_ms']:.2f} ms (p95 {result['append_p95_ms']:.2f} ms); "
        f"verify {result['verify_s']:.2f} s ({result['verify_records_per_s']:.0f} records/s)"
    )
    out.print(result["machine"])


@app.command("retention")
def bench_retention_cmd(
    events: Annotated[int, typer.Option(min=10, help="expired events to delete")] = 100_000,
    url: Annotated[
        str | None, typer.Option(help="an EMPTY database to use (default: scratch SQLite)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Seconds for one retention run over many expired events."""
    from safecity.bench import bench_retention

    result = bench_retention(url, events)
    if as_json:
        print(json.dumps(result))
        return
    out.print(
        f"{result['deleted']} of {result['events']} expired events deleted on "
        f"{result['backend']} in {result['seconds']:.1f} s ({result['events_per_s']:.0f}/s)"
    )


@app.command("api")
def bench_api_cmd(
    events: Annotated[int, typer.Option(min=1, help="events in the scratch store")] = 100_000,
    clients: Annotated[int, typer.Option(min=1, help="concurrent clients")] = 50,
    requests: Annotated[int, typer.Option(min=1, help="rounds per client")] = 20,
    pages: Annotated[int, typer.Option(min=1, help="pages followed per round")] = 3,
    url: Annotated[
        str | None, typer.Option(help="an EMPTY database to use (default: scratch SQLite)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Latency of the events list: a real server, many concurrent clients, many events."""
    from safecity.api.bench import bench_api

    r = bench_api(url, events, clients, requests, pages)
    if as_json:
        print(json.dumps(r))
        return
    out.print(
        f"events list, {r['clients']} clients over {r['events']:,} events ({r['backend']}): "
        f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
        f"{r['requests_per_s']:.0f} req/s over {r['requests']} requests"
        + (f"; {r['errors']} errors (first: {r['first_error']})" if r["errors"] else "")
    )
    if r["errors"]:
        raise typer.Exit(1)


@app.command("components")
def bench_components(
    repeats: Annotated[int, typer.Option(min=3, help="timed runs per component")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Median milliseconds per component on real media, on this machine."""
    from safecity.bench import bench_components as run_bench

    results = run_bench(state.config(), repeats=repeats)
    if as_json:
        print(json.dumps(results))
        return
    table = Table("component", "unit", "median ms", "p90 ms", "runs")
    for r in results["components"]:
        table.add_row(
            r["name"], r["unit"], f"{r['median_ms']:.2f}", f"{r['p90_ms']:.2f}", str(r["runs"])
        )
    out.print(table)
    out.print(results["machine"])
