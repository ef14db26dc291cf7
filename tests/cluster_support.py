"""A cluster coordinator's status document, as ``Coordinator.status()`` writes it, for the
tests of what reads it (the API, the console's health page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from safecity.store.cluster import OUTBOX_LATE_AFTER_S

NODE_A = "a" * 56
NODE_B = "b" * 56


def document(coordinator: str = "head-1", now: datetime | None = None) -> dict:
    """A coordinator's document as ``Coordinator.status()`` writes it: two nodes, two workers
    (one whose database is away, one with an old backlog), three cameras."""
    now = now or datetime.now(UTC)
    return {
        "coordinator": coordinator,
        "run_id": "0123456789abcdef",
        "address": "10.0.0.1:6379",
        "at": now.isoformat(),
        "ended": False,
        "nodes": [
            {
                "id": NODE_A,
                "address": "10.0.0.1",
                "cpus": 4.0,
                "capacity": 8,
                "workers": 1,
                "cameras": 2,
            },
            {
                "id": NODE_B,
                "address": "10.0.0.2",
                "cpus": 2.0,
                "capacity": 4,
                "workers": 1,
                "cameras": 1,
            },
        ],
        "workers": [
            {
                "worker": "w1-aaaaaaaa",
                "node": NODE_A,
                "pid": 4242,
                "host": "edge-a",
                "rss_mb": 812.5,
                "cpu_percent": 143.0,
                "cameras": ["gate-1", "gate-2"],
                "outbox_events": 12,
                "outbox_bytes": 48_000,
                "outbox_oldest": (now - timedelta(seconds=5)).isoformat(),
                "outbox_error": "the database cannot be reached (connection refused)",
                "state": "running",
                "last_error": "",
            },
            {
                "worker": "w2-bbbbbbbb",
                "node": NODE_B,
                "pid": 4343,
                "host": "edge-b",
                "rss_mb": 790.0,
                "cpu_percent": 88.0,
                "cameras": ["gate-3"],
                "outbox_events": 3,
                "outbox_bytes": 9_000,
                "outbox_oldest": (now - timedelta(seconds=OUTBOX_LATE_AFTER_S + 60)).isoformat(),
                "outbox_error": "",
                "state": "running",
                "last_error": "",
            },
        ],
        "cameras": [
            camera("gate-1", "w1-aaaaaaaa", NODE_A),
            camera("gate-2", "w1-aaaaaaaa", NODE_A, last_error="gate-2 secret error"),
            camera("gate-3", "w2-bbbbbbbb", NODE_B),
        ],
        "moves": [
            {"camera": "gate-2", "from": "w0-old", "to": "w1-aaaaaaaa", "at": now.isoformat()},
            {"camera": "gate-1", "from": "w0-old", "to": "w1-aaaaaaaa", "at": now.isoformat()},
        ],
    }


def camera(name: str, worker: str, node: str, last_error: str = "") -> dict:
    return {
        "camera": name,
        "worker": worker,
        "node": node,
        "state": "running",
        "analysed_fps": 4.9,
        "lag_p50_s": 0.21,
        "lag_p95_s": 0.48,
        "event_lag_p95_s": 1.2,
        "events": 17,
        "dropped": 2,
        "frames_in": 600,
        "frames_analysed": 420,
        "reconnects": 1,
        "last_error": last_error,
    }
