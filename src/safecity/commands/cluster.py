"""``safecity run --cluster …`` and ``safecity cluster status``."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer

from safecity.commands.common import FitTable, err, out, state
from safecity.errors import ConfigError

app = typer.Typer(help="The cameras of a Ray cluster: where they run, how they fare.")


def run_on_cluster(cluster: str, stop: threading.Event) -> None:
    """``safecity run --cluster``: place the config's cameras on the cluster until stopped."""
    from sqlalchemy.engine import make_url

    from safecity.alerts.dispatcher import start_dispatcher
    from safecity.governance.scheduler import RetentionScheduler
    from safecity.runtime.cluster import Coordinator, connect, disconnect
    from safecity.runtime.service import ALERTS_DRAIN_S

    config = state.config()
    is_sqlite = make_url(config.store.url).get_backend_name() == "sqlite"
    if is_sqlite and cluster != "local":
        raise ConfigError(
            "workers on other machines cannot reach a SQLite file: set store.url to a "
            "PostgreSQL database every node can reach (and store.media_dir to a shared folder)"
        )
    store = state.store()
    address = connect(cluster)
    coordinator = Coordinator(config, store, address)
    # Retention and the signing of the audit chain head run here, once for the cluster.
    scheduler = RetentionScheduler(store, config, state.signer(), stop_event=stop)
    scheduler.start()
    # Alerts too: one dispatcher for the cluster, reading what the workers stored.
    alerts = start_dispatcher(store, config.alerts)
    # The database's figures (matches, audit head age, alerts), once for the cluster;
    # each worker serves its own cameras' figures.
    from safecity.metrics import ProcessMetrics

    metrics = ProcessMetrics()
    metrics.watch_database(store, config)
    metrics.start(config.metrics)
    err.print(
        f"cluster {address}: {len(coordinator.cameras)} camera(s) on "
        f"{len(coordinator.alive_nodes())} node(s); Ctrl-C stops",
        markup=False,
    )
    left = 0
    try:
        coordinator.run(stop)
    finally:
        left = coordinator.stop()
        stop.set()
        scheduler.join(timeout=30)
        if alerts is not None:
            alerts.stop(drain_s=ALERTS_DRAIN_S)
        metrics.stop()
        disconnect()
    document = coordinator.status()
    out.print(camera_table(document["cameras"]))
    if left:
        err.print(
            f"warning: {left} event(s) wait in the workers' outboxes ({config.outbox.dir}); "
            "they are stored when a worker starts there again",
            markup=False,
        )
    failed = [c["camera"] for c in document["cameras"] if c.get("state") == "failed"]
    if failed:
        err.print(f"error: camera(s) failed: {', '.join(failed)} (see the table)", markup=False)
        raise typer.Exit(2)


@app.command("status")
def status_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Nodes, workers, cameras per node, each camera's state, fps, lag, outbox, last error."""
    from safecity.store.cluster import read_status, with_freshness

    documents = with_freshness(read_status(state.store()), datetime.now(UTC))
    if as_json:
        print(json.dumps(documents, indent=2, sort_keys=True, default=str))
        return
    if not documents:
        out.print("no cluster has reported to this database (safecity run --cluster …)")
        return
    for document in documents:
        when = (
            "ended"
            if document.get("ended")
            else "reporting"
            if document["reporting"]
            else f"NOT reporting for {document['age_s']:.0f} s"
        )
        out.print(
            f"coordinator {document['coordinator']} (run {document['run_id'][:8]}, "
            f"Ray {document.get('address') or '-'}): {when}",
            markup=False,
        )
        out.print(node_table(document["nodes"]))
        out.print(worker_table(document["workers"]))
        out.print(camera_table(document["cameras"]))


def node_table(nodes: list[dict]) -> FitTable:
    rows = [
        [
            n["id"][:12],
            n.get("address", ""),
            f"{n.get('cpus', 0):g}",
            str(n.get("capacity", "")),
            str(n.get("workers", 0)),
            str(n.get("cameras", 0)),
        ]
        for n in nodes
    ]
    return FitTable(
        ["node", "address", "CPUs", "capacity", "workers", "cameras"], rows, title="nodes"
    )


def worker_table(workers: list[dict]) -> FitTable:
    rows = [
        [
            w["worker"],
            w["node"][:12],
            str(w.get("pid") or "-"),
            ", ".join(w.get("cameras", [])),
            _number(w.get("rss_mb"), "{:.0f}"),
            _number(w.get("cpu_percent"), "{:.0f}"),
            f"{w.get('outbox_events', 0)} ({w.get('outbox_bytes', 0) / 1e6:.1f} MB)",
            str(sum(w.get("templates", {}).values())),
            w.get("state", ""),
            w.get("outbox_error") or w.get("last_error", ""),
        ]
        for w in workers
    ]
    return FitTable(
        [
            "worker",
            "node",
            "pid",
            "cameras",
            "RSS MB",
            "CPU %",
            "outbox",
            "templates",
            "state",
            "last error",
        ],
        rows,
        drop=("pid", "node", "templates", "CPU %"),
        wrap=("cameras", "last error"),
        title="workers",
    )


def camera_table(cameras: list[dict]) -> FitTable:
    rows = [
        [
            c["camera"],
            c.get("worker", ""),
            c.get("node", "")[:12],
            c.get("state", ""),
            _number(c.get("analysed_fps"), "{:.1f}"),
            _number(c.get("lag_p95_s", c.get("lag_s")), "{:.2f}"),
            str(c.get("events", 0)),
            str(c.get("dropped", "")),
            c.get("last_error", ""),
        ]
        for c in cameras
    ]
    return FitTable(
        [
            "camera",
            "worker",
            "node",
            "state",
            "fps",
            "lag p95 s",
            "events",
            "dropped",
            "last error",
        ],
        rows,
        drop=("node", "dropped", "worker"),
        wrap=("last error",),
        title="cameras",
    )


def _number(value, form: str) -> str:
    return "-" if value is None else form.format(value)
