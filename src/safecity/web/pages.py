"""The console's pages: server-rendered shells whose scripts load data from the API.

Each page but /login needs a live session (else 303 to ``/login?next=<path>``).
The shell shows a nav bar with only the pages the user's role may use; a page the
role may not use still renders the shell, with the API's refusal sentence (403)
instead of the page's content. Scripts and styles are files under /static, as the
Content-Security-Policy (no inline script or style) requires.

Everyone may change their own password at /password (linked from the header). A
user whose password was set by someone else (an admin creating or resetting the
account: *provisional*, see :mod:`safecity.access.duties`) is sent there from every
other page (303 to ``/password?next=<path>``) until they set their own; the API
ends every session of theirs then, and the page sends them back to sign in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from safecity import __version__
from safecity.access import users
from safecity.access.roles import PERMISSIONS, Permission, Principal
from safecity.api.deps import still_signed_in

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class NavPage:
    key: str
    path: str
    title: str
    permission: Permission | None  # None: every signed-in user


#: The nav bar, in order; a user sees the pages their role has the permission for.
NAV = (
    NavPage("cameras", "/", "Cameras", Permission.VIEW_CAMERAS),
    NavPage("events", "/events", "Events", Permission.VIEW_CAMERAS),
    NavPage("watchlists", "/watchlists", "Watchlists", Permission.VIEW_WATCHLISTS),
    NavPage("review", "/review", "Review", Permission.REVIEW),
    NavPage("audit", "/audit", "Audit", Permission.VIEW_AUDIT),
    NavPage("health", "/health", "Health", Permission.VIEW_CAMERAS),
    NavPage("users", "/users", "Users", Permission.MANAGE_USERS),
)
#: Pages every user has, outside the nav bar (the header links to them).
PASSWORD = NavPage("password", "/password", "Change password", None)
_BY_KEY = {page.key: page for page in (*NAV, PASSWORD)}


def refusal(principal: Principal, permission: Permission) -> str:
    """The sentence the API answers a 403 with (see ``safecity.api.deps.require``)."""
    return f"your role ({principal.role.value}) may not {permission.value}"


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this server, else ``/`` (no open redirects)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return "/"
    return target


def _asset(name: str) -> str:
    return f"/static/{name}?v={__version__}"


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _account(request: Request, principal: Principal) -> users.UserInfo | None:
    try:
        return users.get_user(request.app.state.ctx.store, principal.username)
    except users.UserError:  # gone since the session was checked: the API will say
        return None


async def _render(
    request: Request, key: str, template: str, script: str, **data: object
) -> Response:
    principal = await still_signed_in(request)
    if principal is None:
        return _to_login(request)
    account = await run_in_threadpool(_account, request, principal)
    provisional = account is not None and account.provisional
    if provisional and key != PASSWORD.key:
        # Nothing else until the password is the user's own.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PASSWORD.path}?next={quote(target, safe='')}", 303)
    page = _BY_KEY[key]
    refused = (
        None
        if page.permission is None or principal.can(page.permission)
        else refusal(principal, page.permission)
    )
    permissions = sorted(p.name.lower() for p in PERMISSIONS[principal.role])
    context = {
        "title": "Set your own password" if provisional else page.title,
        "active": key,
        "nav": []
        if provisional
        else [p for p in NAV if p.permission and principal.can(p.permission)],
        "provisional": provisional,
        "password_set_by": account.password_set_by if account is not None else "",
        "user": principal,
        "permissions": permissions,
        "can": lambda name: name in permissions,
        "refused": refused,
        "asset": _asset,
        "scripts": [] if refused else [script],
        **data,
    }
    response = templates.TemplateResponse(
        request, template, context, status_code=403 if refused else 200
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request,
    next_: Annotated[str | None, Query(alias="next")] = None,
    changed: Annotated[str | None, Query()] = None,
) -> Response:
    """Sign in; ``changed=1``: say the password was just changed (the sessions ended)."""
    target = safe_next(next_)
    if await still_signed_in(request) is not None:
        return RedirectResponse(target, status_code=303)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"next": target, "asset": _asset, "title": "Sign in", "changed": changed == "1"},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


#: Every page but the login: (path, nav key, template and script name, path id).
_PAGES = [
    ("/", "cameras", "cameras", None),
    ("/events", "events", "events", None),
    ("/events/{item_id:int}", "events", "event", "item_id"),
    ("/watchlists", "watchlists", "watchlists", None),
    ("/watchlists/{item_id:int}", "watchlists", "watchlist", "item_id"),
    ("/review", "review", "review", None),
    ("/audit", "audit", "audit", None),
    ("/health", "health", "health", None),
    ("/users", "users", "users", None),
    ("/password", "password", "password", None),
]


def _page(key: str, name: str, with_id: str | None):
    async def page(request: Request) -> Response:
        # The path's ``:int`` convertor makes anything but digits a plain 404.
        data: dict[str, object] = {"item_id": request.path_params[with_id]} if with_id else {}
        if key == PASSWORD.key:
            data["next"] = safe_next(request.query_params.get("next"))
            data["min_password"] = users.MIN_PASSWORD
        return await _render(request, key, f"{name}.html", f"{name}.js", **data)

    return page


for _path, _key, _name, _with_id in _PAGES:
    router.add_api_route(
        _path, _page(_key, _name, _with_id), methods=["GET"], response_class=HTMLResponse
    )


def install(app: FastAPI) -> None:
    """Serve the console: /static assets and the pages."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
