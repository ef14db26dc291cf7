"""``safecity serve``: the operator console and REST API (and, with a config, its cameras)."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from safecity.commands.common import err, out, state
from safecity.errors import ConfigError


def serve_cmd(
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default: config api.host)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port (default: config api.port, 8080)")
    ] = None,
    cameras: Annotated[
        bool,
        typer.Option(
            "--cameras/--no-cameras",
            help="also run the config's cameras here, with live view (default when a config "
            "lists cameras); --no-cameras when 'safecity run' analyses them elsewhere",
        ),
    ] = True,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="join this Ray cluster (local, auto = $RAY_ADDRESS, or an address) for the "
            "live view of the cameras 'safecity run --cluster' analyses on its workers",
        ),
    ] = None,
) -> None:
    """Serve the console and the API under /api/v1 (sign in with a 'safecity user add' user)."""
    import uvicorn

    from safecity.access.users import count_users
    from safecity.api.app import create_app
    from safecity.api.context import ApiContext
    from safecity.api.live import LiveHub
    from safecity.runtime.service import CameraService

    config = state.config()
    store = state.store()
    host = host or config.api.host
    port = port or config.api.port
    _check_address(host, port)
    if count_users(store) == 0:
        err.print(
            "note: no users yet; create the first admin with: safecity user add NAME --role admin"
        )
    if host not in ("127.0.0.1", "localhost", "::1") and not config.api.secure_cookies:
        err.print(
            f"note: listening on {host} with api.secure_cookies off; serve the console over "
            "HTTPS (a TLS proxy) and set secure_cookies: true"
        )
    run_cameras = cameras and any(c.enabled for c in config.cameras)
    live = LiveHub(config.api.live_fps) if run_cameras else None
    service = CameraService(
        store,
        config,
        state.signer(),
        run_cameras=run_cameras,
        on_frame=live.publish if live is not None else None,
        on_camera_end=live.forget if live is not None else None,
    )
    ctx = ApiContext(config, store, live=live)
    remote_live = None
    if cluster is not None:
        from safecity.api.remote_live import RemoteLive
        from safecity.runtime.cluster import connect

        address = connect(cluster)
        remote_live = RemoteLive(store, config.api.live_fps)
        out.print(f"joined the Ray cluster at {address}: live view of its workers' cameras")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ctx, remote_live),
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            # Console tabs hold event streams open; they must not keep a stop waiting.
            timeout_graceful_shutdown=3,
            # Behind a reverse proxy the client's address (login limits, audit origin)
            # comes from X-Forwarded-For, trusted only from these proxies.
            proxy_headers=bool(config.api.forwarded_allow_ips),
            forwarded_allow_ips=config.api.forwarded_allow_ips or None,
        )
    )
    service.start()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    cameras_here = (
        f"{len(service.cameras)} camera(s) run here" if run_cameras else "no cameras here"
    )
    out.print(f"safecity console on http://{shown}:{port}/ ({cameras_here}); Ctrl-C stops")
    # uvicorn handles Ctrl-C and SIGTERM, then raises the signal again for the handler it
    # found: ours, which only asks the cameras to stop, so the stop below always runs.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.stop_event.set())
    try:
        server.run()
    finally:
        service.stop()
        if remote_live is not None:
            from safecity.runtime.cluster import disconnect

            disconnect()
    failed = service.failed_cameras()
    if failed:
        err.print(f"error: camera(s) failed: {', '.join(failed)}")
        raise typer.Exit(2)


def _check_address(host: str, port: int) -> None:
    """Fail in one line, before any camera starts, when the address cannot be listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
