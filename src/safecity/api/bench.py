"""``safecity bench api``: how fast the real server lists events to many clients at once.

The server runs as it does in production (uvicorn, one worker, its own process);
this process plays ``clients`` consoles or scripts paging through the events
list over HTTP with an API token. Latencies are of whole HTTP requests as a
client sees them, on loopback.

>>> result = bench_api(events=500, clients=4, requests_per_client=3)  # doctest: +SKIP
>>> result["p50_ms"], result["errors"]  # doctest: +SKIP
(4.1, 0)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from safecity.errors import SafecityError

CAMERAS = 20
DAYS = 30
LABELS = ("person", "person", "car", "bicycle")  # people are the most common
MATCH_EVERY = 100  # ~1% of events matched a watchlist person
_WARMUP = 5
_PAGE = 50
_START_TIMEOUT_S = 60.0


def _seed(store: Any, events: int) -> str:
    """``events`` event rows, ~1% matched; an admin and an API token (returned)."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from safecity.access.roles import Role
    from safecity.access.sessions import create_token
    from safecity.access.users import create_user
    from safecity.governance.authorisations import approve
    from safecity.identity.watchlists import create_watchlist
    from safecity.store.schema import EventRecord, Person

    now = datetime.now(UTC)
    create_user(store, "bench", uuid.uuid4().hex, Role.ADMIN, by="bench")
    token, _ = create_token(store, "bench", "bench api", by="bench")
    watchlist = create_watchlist(
        store,
        "bench wanted",
        by="bench",
        legal_basis="bench",
        authority="bench",
        reference="BENCH-1",
        purpose="benchmark",
        valid_from=now - timedelta(days=DAYS + 1),
        valid_until=now + timedelta(days=1),
    )
    approve(store, watchlist.authorisation_id, by="bench-approver")
    with store.transaction(write=True) as session:
        people = [
            Person(name=f"Person {i}", watchlist_id=watchlist.id, enrolled_by="bench")
            for i in range(10)
        ]
        session.add_all(people)
        session.flush()
        person_ids = [p.id for p in people]

    rng = np.random.default_rng(4)
    offsets = rng.uniform(0, DAYS * 86400, size=events)
    durations = rng.uniform(1, 30, size=events)
    scores = rng.uniform(0.5, 0.95, size=events)
    statuses = ("candidate", "confirmed", "rejected")
    chunk = 10_000
    for start in range(0, events, chunk):
        rows = []
        for i in range(start, min(events, start + chunk)):
            began = now - timedelta(seconds=float(offsets[i]))
            row = {
                "uuid": uuid.uuid4().hex,
                "camera": f"cam-{i % CAMERAS}",
                "track_id": i,
                "label": LABELS[i % len(LABELS)],
                "started_at": began,
                "ended_at": began + timedelta(seconds=float(durations[i])),
                "best_score": float(scores[i]),
                "frames": int(durations[i] * 4),
                "created_at": began,
                "match_person_id": None,
                "match_watchlist_id": None,
                "match_score": None,
                "match_margin": None,
                "match_status": None,
                "match_authorisation_id": None,
            }
            if i % MATCH_EVERY == 0 and row["label"] == "person":
                row.update(
                    match_person_id=person_ids[i % len(person_ids)],
                    match_watchlist_id=watchlist.id,
                    match_score=0.9,
                    match_margin=0.2,
                    match_status=statuses[(i // MATCH_EVERY) % len(statuses)],
                    match_authorisation_id=watchlist.authorisation_id,
                )
            rows.append(row)
        with store.transaction(write=True) as session:
            session.execute(insert(EventRecord), rows)
    return token


def _serve(url: str, media_dir: str, config: dict, port: int) -> None:
    """The server process: the real app on the bench store, until SIGTERM."""
    import logging

    import uvicorn

    from safecity.api.app import create_app
    from safecity.api.context import ApiContext
    from safecity.config import SafecityConfig
    from safecity.store import open_store

    logging.basicConfig(level=logging.WARNING)
    store = open_store(url, Path(media_dir), migrate=False)
    try:
        app = create_app(ApiContext(SafecityConfig.model_validate(config), store))
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", access_log=False, workers=1
            )
        )
        server.run()  # until SIGTERM (uvicorn shuts down gracefully)
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(base: str, process: multiprocessing.process.BaseProcess) -> None:
    import httpx

    deadline = time.monotonic() + _START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise SafecityError(
                f"the benchmark server exited at start (exit code {process.exitcode}); "
                "its error is above"
            )
        try:
            response = httpx.get(f"{base}/healthz", timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as error:
            last = str(error) or type(error).__name__
        time.sleep(0.1)
    raise SafecityError(
        f"the benchmark server did not come up in {_START_TIMEOUT_S:.0f} s ({last})"
    )


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        process.terminate()  # SIGTERM: uvicorn finishes open requests and exits
        process.join(15)
    if process.is_alive():
        process.kill()
        process.join(5)


class _Drive:
    """The clients' side: latencies of every request, and the errors."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: dict[str, Any] | None = None

    async def get(self, client: Any, params: dict[str, Any], record: bool = True) -> dict | None:
        import httpx

        started = time.perf_counter()
        try:
            response = await client.get("/api/v1/events", params=params)
        except httpx.HTTPError as error:
            elapsed = time.perf_counter() - started
            self._error(None, f"{type(error).__name__}: {error}")
            body = None
        else:
            elapsed = time.perf_counter() - started
            body = None
            if response.status_code == 200:
                body = response.json()
            else:
                try:
                    detail = response.json().get("detail")
                except ValueError:
                    detail = response.text[:200]
                self._error(response.status_code, detail)
        if record:
            self.latencies.append(elapsed)
        return body

    def _error(self, status: int | None, detail: Any) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = {"status": status, "detail": detail}

    async def client(self, rounds: int, pages: int) -> None:
        import httpx

        async with httpx.AsyncClient(
            base_url=self.base, headers=self.headers, timeout=120
        ) as client:
            for r in range(rounds):
                body = await self.get(client, {"limit": _PAGE})
                for _ in range(pages - 1):
                    cursor = body and body.get("next_cursor")
                    if not cursor:
                        break
                    body = await self.get(client, {"limit": _PAGE, "cursor": cursor})
                if r % 4 == 0:  # every 4th round, from the first
                    await self.get(client, {"limit": _PAGE, "camera": "cam-3", "label": "person"})

    async def run(self, clients: int, rounds: int, pages: int) -> float:
        import httpx

        async with httpx.AsyncClient(base_url=self.base, headers=self.headers) as client:
            for i in range(_WARMUP):
                await self.get(client, {"limit": _PAGE, "camera": f"cam-{i}"}, record=False)
        self.errors, self.first_error = 0, None  # warm-up errors repeat below if real
        started = time.perf_counter()
        await asyncio.gather(*(self.client(rounds, pages) for _ in range(clients)))
        return time.perf_counter() - started


def bench_api(
    url: str | None = None,
    events: int = 100_000,
    clients: int = 50,
    requests_per_client: int = 20,
    pages: int = 3,
) -> dict:
    """Latency and throughput of ``GET /api/v1/events`` under ``clients`` concurrent clients.

    Runs on a scratch SQLite file unless ``url`` names another empty database
    (which keeps the rows). Each client does ``requests_per_client`` rounds: the
    first page of 50 events, up to ``pages``-1 further pages by ``next_cursor``,
    and every 4th round a filtered list (one camera, people only).
    """
    import tempfile

    from safecity.config import SafecityConfig
    from safecity.store import open_store

    if events < 1 or clients < 1 or requests_per_client < 1 or pages < 1:
        raise SafecityError("events, clients, requests per client and pages must be 1 or more")
    try:
        import httpx  # noqa: F401  (the clients' HTTP library)
    except ImportError:
        raise SafecityError(
            "the API benchmark needs the httpx package; install it with: pip install httpx"
        ) from None
    with tempfile.TemporaryDirectory(prefix="safecity-bench-") as folder:
        store_url = url or f"sqlite:///{folder}/api.db"
        media = Path(folder) / "media"
        config = SafecityConfig.model_validate(
            {
                "store": {"url": store_url, "media_dir": str(media)},
                "audit": {"key_path": f"{folder}/key.pem", "heads_path": f"{folder}/heads.jsonl"},
            }
        )
        store = open_store(store_url, media)
        try:
            token = _seed(store, events)
        finally:
            store.close()
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        process = multiprocessing.get_context("spawn").Process(
            target=_serve,
            args=(store_url, str(media), config.model_dump(mode="json"), port),
            name="safecity-bench-server",
            daemon=True,
        )
        process.start()
        try:
            _wait_until_up(base, process)
            drive = _Drive(base, token)
            seconds = asyncio.run(drive.run(clients, requests_per_client, pages))
        finally:
            _stop(process)
    ms = np.array(drive.latencies) * 1000
    return {
        "events": events,
        "clients": clients,
        "requests": len(drive.latencies),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "requests_per_s": len(drive.latencies) / seconds if seconds else 0.0,
        "errors": drive.errors,
        "first_error": drive.first_error,
        "backend": "sqlite" if url is None else url.split(":", 1)[0].split("+", 1)[0],
        "server_workers": 1,
    }
