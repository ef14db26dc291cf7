"""Cameras, their health, and their live view (annotated, redacted frames)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from safecity.access.roles import Permission, Principal
from safecity.api.context import ApiContext
from safecity.api.deps import Context, Page, check_camera, require, still_signed_in
from safecity.api.errors import NotFound
from safecity.api.remote_live import RemoteLive
from safecity.api.schemas.cameras import Camera, Health
from safecity.api.schemas.common import JPEG_RESPONSE
from safecity.api.schemas.common import Page as PageOf
from safecity.store.cameras import list_cameras
from safecity.store.health import read_health

if TYPE_CHECKING:
    from safecity.api.live import LiveHub

router = APIRouter(tags=["cameras"])
Viewer = Annotated[Principal, Depends(require(Permission.VIEW_CAMERAS))]
CameraName = Annotated[str, Path(min_length=1, max_length=128)]

#: States of a pipeline that still reports; finished, stopped and failed ones do not.
_ALIVE = {"starting", "running", "reconnecting"}
#: A live camera that has not reported for this long is flagged ``stale``.
STALE_AFTER = timedelta(seconds=30)
#: How often an open live stream checks that its user is still signed in.
RECHECK_S = 30.0
BOUNDARY = "frame"


def remote_live(request: Request) -> RemoteLive | None:
    """The live view of cameras on Ray workers, when this server joined a cluster."""
    return request.app.state.remote_live


Remote = Annotated[RemoteLive | None, Depends(remote_live)]


def health_list(ctx: ApiContext, user: Principal) -> list[Health]:
    """The health rows of the user's cameras, by camera (blocking: call in a thread)."""
    now = ctx.clock.now()
    rows = read_health(ctx.store, cameras=user.camera_filter())
    return sorted(
        (
            Health(
                camera=r.camera,
                state=r.state,
                frames_in=r.frames_in,
                frames_analysed=r.frames_analysed,
                events=r.events,
                reconnects=r.reconnects,
                detector_ms=r.detector_ms,
                lag_s=r.lag_s,
                last_error=r.last_error,
                host=r.host,
                updated_at=r.updated_at,
                stale=r.state in _ALIVE and now - r.updated_at > STALE_AFTER,
            )
            for r in rows
            if user.sees_camera(r.camera)
        ),
        key=lambda h: h.camera,
    )


@router.get("/cameras", response_model=PageOf[Camera])
def cameras(user: Viewer, ctx: Context, page: Page, remote: Remote) -> PageOf[Camera]:
    """The cameras granted to you: configured ones and any that report health."""
    health = {h.camera: h for h in health_list(ctx, user)}
    live = set(ctx.live.cameras()) if ctx.live is not None else set()
    if remote is not None:
        live |= set(remote.cameras())
    locations = {c.name: c.location for c in list_cameras(ctx.store)}
    locations.update({c.name: c.location for c in ctx.config.cameras})
    names = sorted(user.visible({c.name for c in ctx.config.cameras} | set(health) | live))
    chosen, next_cursor = page.cut(names[page.offset : page.offset + page.limit + 1])
    items = [
        Camera(
            name=name,
            location=locations.get(name, ""),
            live=name in live,
            health=health.get(name),
        )
        for name in chosen
    ]
    return PageOf[Camera](items=items, next_cursor=next_cursor)


@router.get("/health", response_model=PageOf[Health])
def health(user: Viewer, ctx: Context, page: Page) -> PageOf[Health]:
    """What each of your cameras' pipelines last reported; ``stale``: it stopped reporting."""
    rows, next_cursor = page.cut(health_list(ctx, user)[page.offset :])
    return PageOf[Health](items=rows, next_cursor=next_cursor)


def _runs_here(ctx: ApiContext, name: str) -> bool:
    return ctx.live is not None and name in ctx.live.cameras()


def _not_running(name: str) -> NotFound:
    return NotFound(f"camera {name} is not running in this server")


@router.get("/cameras/{name}/frame.jpg", response_class=Response, responses=JPEG_RESPONSE)
def frame(name: CameraName, user: Viewer, ctx: Context, remote: Remote) -> Response:
    """The newest live frame, annotated (faces pixelated unless your role sees faces)."""
    check_camera(user, name)
    faces_visible = user.can(Permission.SEE_FACES)
    jpeg = None
    if _runs_here(ctx, name):
        assert ctx.live is not None
        jpeg = ctx.live.latest_jpeg(name, faces_visible=faces_visible)
    elif remote is not None:
        jpeg = remote.latest_jpeg(name, faces_visible)
    if jpeg is None:
        raise _not_running(name)
    return Response(jpeg, media_type="image/jpeg")


async def _still_allowed(request: Request, camera: str, faces_visible: bool) -> bool:
    """Whether the stream's user is still signed in, sees ``camera``, and in the same mode."""
    principal = await still_signed_in(request)
    return (
        principal is not None
        and principal.sees_camera(camera)
        and principal.can(Permission.SEE_FACES) == faces_visible
    )


@router.get(
    "/cameras/{name}/live.mjpg",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}},
            "description": "an endless MJPEG stream",
        }
    },
)
async def live(
    name: CameraName, request: Request, user: Viewer, ctx: Context, remote: Remote
) -> Response:
    """The live view as MJPEG (an ``<img>`` can show it), at most ``api.live_fps`` a second.

    A camera this server does not run comes from the Ray worker that runs it, when the
    server joined the cluster (``serve --cluster``).
    """
    check_camera(user, name)
    faces_visible = user.can(Permission.SEE_FACES)
    hub: LiveHub | RemoteLive
    if _runs_here(ctx, name):
        assert ctx.live is not None
        hub = ctx.live
    elif remote is not None and await run_in_threadpool(remote.actor, name) is not None:
        hub = remote
    else:
        raise _not_running(name)

    async def parts() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        # Each part ends with the next boundary at once: browsers draw a part only when
        # its end is seen, and a still camera may send no next part for a while.
        yield f"--{BOUNDARY}\r\n".encode()
        async for jpeg in hub.frames(name, faces_visible, request.is_disconnected):
            if loop.time() - checked >= RECHECK_S:
                checked = loop.time()
                if not await _still_allowed(request, name, faces_visible):
                    return
            head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            yield head.encode() + jpeg + f"\r\n--{BOUNDARY}\r\n".encode()

    return StreamingResponse(
        parts(),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
