"""The cluster's state (``safecity run --cluster``), as ``safecity cluster status`` shows it.

Read-only, from the documents the coordinators write to the database (no connection to
Ray). Whoever may see camera health may see it, within their cameras: a user limited to
some cameras sees only those cameras, the workers that run them (with only those in their
camera lists), the moves of those cameras, and node counts over what they see; a
coordinator that runs none of their cameras is left out.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import ValidationError

from safecity.access.roles import Permission, Principal
from safecity.api.deps import Context, require
from safecity.api.schemas.cluster import Cluster, ClusterCoordinator
from safecity.store.cluster import (
    OUTBOX_LATE_AFTER_S,
    STALE_AFTER_S,
    read_status,
    with_freshness,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["cameras"])
Viewer = Annotated[Principal, Depends(require(Permission.VIEW_CAMERAS))]


@router.get("/cluster", response_model=Cluster)
def cluster(user: Viewer, ctx: Context) -> Cluster:
    """Per coordinator: reporting or not, nodes, workers (RSS, CPU, outbox backlog), cameras
    (node, worker, state, fps, lag, last error), recent moves; within your cameras."""
    coordinators = []
    for document in with_freshness(read_status(ctx.store), ctx.clock.now()):
        scoped = _within_scope(document, user)
        if scoped is None:
            continue
        try:
            coordinators.append(ClusterCoordinator.model_validate(scoped))
        except ValidationError as exc:
            # A document another version wrote: the rest of the cluster still shows.
            log.warning("cluster status of %s not shown: %s", document.get("coordinator"), exc)
    return Cluster(
        coordinators=coordinators,
        stale_after_s=STALE_AFTER_S,
        outbox_late_after_s=OUTBOX_LATE_AFTER_S,
    )


def _within_scope(document: dict, user: Principal) -> dict | None:
    """``document`` cut to the cameras ``user`` sees (None: none of them), outboxes rated."""
    cameras = [
        {**c, "lag_p95_s": c.get("lag_p95_s", c.get("lag_s"))}
        for c in document.get("cameras", [])
        if user.sees_camera(str(c.get("camera", "")))
    ]
    workers = [
        {
            **w,
            "cameras": user.visible(w.get("cameras", [])),
            "outbox_health": _outbox_health(w),
        }
        for w in document.get("workers", [])
    ]
    nodes = document.get("nodes", [])
    if user.camera_filter() is not None:
        if not cameras:
            return None
        hosting = {c.get("worker") for c in cameras}
        workers = [w for w in workers if w["cameras"] or w.get("worker") in hosting]
        nodes = [
            {
                **n,
                "workers": sum(1 for w in workers if w.get("node") == n.get("id")),
                "cameras": sum(1 for c in cameras if c.get("node") == n.get("id")),
            }
            for n in nodes
        ]
    moves = [m for m in document.get("moves", []) if user.sees_camera(str(m.get("camera", "")))]
    return {**document, "cameras": cameras, "workers": workers, "nodes": nodes, "moves": moves}


def _outbox_health(worker: dict) -> str:
    """error: the outbox cannot store; late: its oldest event waited too long; else ok."""
    if worker.get("outbox_error"):
        return "error"
    age = worker.get("outbox_age_s")
    return "late" if age is not None and age > OUTBOX_LATE_AFTER_S else "ok"
