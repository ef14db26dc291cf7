"""``safecity run``: every camera of the config, until stopped."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import err, out, state, stop_on_signals
from safecity.errors import ConfigError


def run_cmd(
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="spread the cameras over a Ray cluster: 'local' (start one here), "
            "'auto' (join RAY_ADDRESS) or the address of a head node",
        ),
    ] = None,
) -> None:
    """Run every camera of the config (--config) until stopped (Ctrl-C)."""
    from safecity.runtime.service import CameraService

    if state.config_path is None:
        raise ConfigError("safecity run needs --config FILE listing the cameras")
    config = state.config()
    if not any(c.enabled for c in config.cameras):
        raise ConfigError(f"{state.config_path} lists no enabled camera")
    if cluster is not None:
        from safecity.commands.cluster import run_on_cluster

        run_on_cluster(cluster, stop_on_signals())
        return
    store = state.store()
    # Cameras, health reports for the console, retention and head signing.
    service = CameraService(store, config, state.signer(), stop=stop_on_signals())
    service.start()
    try:
        service.wait()
    finally:
        service.stop()
    table = Table(
        "camera",
        "state",
        "frames in",
        "analysed",
        "events",
        "reconnects",
        "detector ms",
        "last error",
    )
    for s in service.stats:
        table.add_row(
            s.camera,
            s.state,
            str(s.frames_in),
            str(s.frames_analysed),
            str(s.events),
            str(s.reconnects),
            f"{s.detector_ms_median:.1f}",
            s.last_error,
        )
    out.print(table)
    failed = service.failed_cameras()
    if failed:
        err.print(f"error: camera(s) failed: {', '.join(failed)} (see the table)", markup=False)
        raise typer.Exit(2)
