"""The console's pages over HTTP: sign-in redirects, the role's nav, assets, no inline code."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from api_support import PASSWORD, signed_in
from fastapi import FastAPI
from fastapi.testclient import TestClient

from safecity.access.roles import Role
from safecity.access.users import create_user, set_password
from safecity.store import Store
from safecity.web import pages

WEB = Path(pages.__file__).parent
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
SCRIPTS = sorted((WEB / "static").glob("*.js"))
PAGE_PATHS = (
    "/",
    "/events",
    "/events/7",
    "/watchlists",
    "/watchlists/3",
    "/review",
    "/audit",
    "/health",
    "/users",
    "/password",
)
#: The nav links each role sees (by data-testid).
NAV = {
    "ada": {"cameras", "events", "watchlists", "audit", "health", "users"},  # no decisions
    "olga": {"cameras", "events", "watchlists", "health"},
    "rita": {"cameras", "events", "watchlists", "review", "health"},
    "aude": {"cameras", "events", "watchlists", "audit", "health"},
    "vic": {"cameras", "events", "health"},
}


class Page(HTMLParser):
    """The elements of an HTML page: tags with attributes, script bodies, the error text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in: list[str] = []
        self.error = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self.script_bodies.append("")
        marker = "error" if dict(attrs).get("id") == "error" else tag
        self._in.append(marker)

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "script":
            self.script_bodies[-1] += data
        if "error" in self._in:
            self.error += data

    def testids(self, prefix: str = "") -> list[str]:
        ids = [a.get("data-testid") or "" for _, a in self.elements]
        return [i for i in ids if i.startswith(prefix)]

    def by_testid(self, testid: str) -> dict[str, str | None]:
        return next(a for _, a in self.elements if a.get("data-testid") == testid)

    def srcs(self, tag: str, attribute: str) -> list[str]:
        return [a[attribute] or "" for t, a in self.elements if t == tag and a.get(attribute)]


def test_pages_send_an_anonymous_visitor_to_sign_in(anonymous: TestClient) -> None:
    response = anonymous.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F"
    filtered = anonymous.get("/events?camera=gate-1", follow_redirects=False)
    assert filtered.headers["location"] == "/login?next=%2Fevents%3Fcamera%3Dgate-1"
    for path in PAGE_PATHS:
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path


def test_an_ended_session_is_sent_to_sign_in_not_answered_with_json(app: FastAPI) -> None:
    client = TestClient(app, cookies={"safecity_session": "no-such-session"})
    response = client.get("/review", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Freview"


def test_the_sign_in_page_renders_and_keeps_next_local(anonymous: TestClient) -> None:
    response = anonymous.get("/login?next=/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Page(response.text)
    assert {"login-form", "login-username", "login-password", "login-submit", "error"} <= set(
        page.testids()
    )
    assert page.by_testid("login-form")["data-next"] == "/events"
    assert page.by_testid("login-password")["type"] == "password"
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "events"):
        form = Page(anonymous.get("/login", params={"next": target}).text).by_testid("login-form")
        assert form["data-next"] == "/", target


def test_sign_in_then_the_page_asked_for(anonymous: TestClient) -> None:
    signed = anonymous.post("/api/v1/auth/login", json={"username": "olga", "password": PASSWORD})
    assert signed.status_code == 200
    again = anonymous.get("/login?next=%2Fwatchlists", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/watchlists"
    assert anonymous.get("/watchlists").status_code == 200


@pytest.mark.parametrize("username", sorted(NAV))
def test_the_nav_shows_only_the_pages_of_the_role(app: FastAPI, username: str) -> None:
    client = signed_in(app, username)
    response = client.get("/")
    assert response.status_code == 200
    page = Page(response.text)
    assert {i.removeprefix("nav-") for i in page.testids("nav-")} == NAV[username]
    role = client.get("/api/v1/auth/me").json()["role"]
    assert f">{username}</span>" in response.text and f">{role}</span>" in response.text
    assert "logout" in page.testids()
    assert "hidden" in page.by_testid("error")  # nothing to report


def test_every_page_renders_for_an_admin_with_its_script(app: FastAPI) -> None:
    client, reviewer = signed_in(app, "ada"), signed_in(app, "rita")  # admins do not review
    for path in PAGE_PATHS:
        response = (reviewer if path == "/review" else client).get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page = Page(response.text)
        scripts = [s.split("?")[0] for s in page.srcs("script", "src")]
        assert scripts[0] == "/static/app.js", path
        assert len(scripts) == 2, path  # app.js and the page's own
    detail = Page(client.get("/events/7").text)
    assert detail.elements[[t for t, _ in detail.elements].index("body")][1]["data-item-id"] == "7"
    assert client.get("/events/not-a-number").status_code == 404


def test_a_page_the_role_may_not_use_shows_the_apis_refusal(app: FastAPI) -> None:
    viewer = signed_in(app, "vic")
    response = viewer.get("/watchlists")
    assert response.status_code == 403
    page = Page(response.text)
    assert page.error == "your role (viewer) may not view watchlists and authorisations"
    assert "hidden" not in page.by_testid("error")
    assert {i.removeprefix("nav-") for i in page.testids("nav-")} == NAV["vic"]
    assert [s.split("?")[0] for s in page.srcs("script", "src")] == ["/static/app.js"]
    assert "watchlist-form" not in page.testids()
    # The same sentence as the API's own 403.
    operator = signed_in(app, "olga")
    api = operator.get("/api/v1/users")
    assert api.status_code == 403
    assert Page(operator.get("/users").text).error == api.json()["detail"]
    assert Page(signed_in(app, "rita").get("/audit").text).error == (
        "your role (reviewer) may not read and verify the audit trail"
    )


def test_viewers_get_no_identity_filters_and_operators_get_the_enrol_form(app: FastAPI) -> None:
    viewer = set(Page(signed_in(app, "vic").get("/events").text).testids())
    assert {"filter-camera", "filter-label", "filter-since", "filter-until"} <= viewer
    assert not {"filter-person", "filter-status", "filter-plate", "filter-fuzzy"} & viewer
    auditor = set(Page(signed_in(app, "aude").get("/events").text).testids())
    assert {"filter-person", "filter-status", "filter-plate", "filter-fuzzy"} <= auditor
    operator = Page(signed_in(app, "olga").get("/watchlists/3").text).testids()
    assert {"enrol-form", "enrol-name", "enrol-photos", "enrol-submit"} <= set(operator)
    auditor = Page(signed_in(app, "aude").get("/watchlists/3").text).testids()
    assert "enrol-form" not in auditor and "person-list" in auditor
    enrol = Page(signed_in(app, "olga").get("/watchlists/3").text).by_testid("enrol-photos")
    assert enrol["accept"] == "image/jpeg,image/png" and "multiple" in enrol


def test_static_assets_are_served_with_their_types(anonymous: TestClient) -> None:
    expected = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assets = sorted(p for p in (WEB / "static").iterdir() if p.is_file())
    assert {p.suffix for p in assets} == set(expected)
    for asset in assets:
        response = anonymous.get(f"/static/{asset.name}")
        assert response.status_code == 200, asset.name
        assert expected[asset.suffix] in response.headers["content-type"], asset.name
    assert anonymous.get("/static/nothing.js").status_code == 404


def test_every_asset_a_page_names_exists(app: FastAPI, anonymous: TestClient) -> None:
    client, reviewer = signed_in(app, "ada"), signed_in(app, "rita")
    named = set()
    for path in (*PAGE_PATHS, "/login"):
        who = anonymous if path == "/login" else reviewer if path == "/review" else client
        page = Page(who.get(path).text)
        named |= {s.split("?")[0] for s in page.srcs("script", "src") + page.srcs("link", "href")}
    for path in named:
        assert anonymous.get(path).status_code == 200, path
    assert {p.name for p in SCRIPTS} == {n.rsplit("/", 1)[1] for n in named if n.endswith(".js")}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_no_inline_script_or_style_in_templates(template: Path) -> None:
    page = Page(template.read_text())
    for tag, attrs in page.elements:
        assert tag != "style", template.name
        if tag == "script":
            assert attrs.get("src"), f"{template.name}: a <script> without src"
        for name, value in attrs.items():
            assert name != "style", f"{template.name}: style attribute on <{tag}>"
            assert not name.startswith("on"), f"{template.name}: {name} handler on <{tag}>"
            assert not (value or "").strip().lower().startswith("javascript:"), template.name
    assert all(not body.strip() for body in page.script_bodies), template.name


def test_no_inline_code_in_rendered_pages(app: FastAPI) -> None:
    client, reviewer = signed_in(app, "ada"), signed_in(app, "rita")
    for path in PAGE_PATHS:
        page = Page((reviewer if path == "/review" else client).get(path).text)
        assert all(not body.strip() for body in page.script_bodies), path
        assert not any(t == "style" or "style" in a for t, a in page.elements), path


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_insert_text_not_html_and_document_their_test_ids(script: Path) -> None:
    text = script.read_text()
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert risky not in text, f"{script.name} uses {risky}"
    header = text.split("*/", 1)[0]
    used = set(re.findall(r"testid: '([a-z-]+)'", text))
    assert used <= set(re.findall(r"[a-z]+(?:-[a-z]+)+|[a-z]+", header)), script.name


def test_templates_escape_what_they_insert() -> None:
    assert pages.templates.env.autoescape("base.html") is True  # type: ignore[operator]
    assert pages.safe_next("/events?camera=a") == "/events?camera=a"
    assert pages.safe_next("//example.org") == "/" and pages.safe_next(None) == "/"


def test_a_password_an_admin_set_sends_its_owner_to_set_their_own_before_anything(
    app: FastAPI, api_store: Store
) -> None:
    create_user(api_store, "nina.brandt", PASSWORD, Role.REVIEWER, by="ada", cameras=["gate-1"])
    nina = signed_in(app, "nina.brandt")
    assert nina.get("/api/v1/auth/me").json()["password_provisional"] is True
    for path in PAGE_PATHS[:-1]:
        response = nina.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/password?next={quote(path, safe='')}", path
    page = Page(nina.get("/password?next=%2Freview").text)
    assert {"password-form", "password-current", "password-new", "password-again"} <= set(
        page.testids()
    )
    assert "password-provisional" in page.testids() and not page.testids("nav-")
    assert page.by_testid("password-form")["data-next"] == "/review"
    assert page.by_testid("password-form")["data-min-length"] == "10"
    assert (
        Page(nina.get("/password?next=//evil.example").text).by_testid("password-form")["data-next"]
        == "/"
    )
    assert "<h1>Set your own password</h1>" in nina.get("/password").text

    # What the form sends; the endpoint ends the session, so every page asks to sign in.
    refused = nina.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "Nina.Brandt"}
    )
    assert refused.status_code == 400  # the page shows this sentence
    assert refused.json()["detail"] == "the password must not be the user name"
    done = nina.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "nina's own!"}
    )
    assert done.status_code == 204
    assert nina.get("/review", follow_redirects=False).headers["location"] == (
        "/login?next=%2Freview"
    )
    changed = Page(nina.get("/login?changed=1&next=%2Freview").text)
    assert "password-changed" in changed.testids()
    assert "password-changed" not in Page(nina.get("/login").text).testids()
    again = signed_in(app, "nina.brandt", "nina's own!")
    assert again.get("/api/v1/auth/me").json()["password_provisional"] is False
    assert again.get("/review").status_code == 200


def test_everyone_may_change_their_password_from_the_header(app: FastAPI, api_store: Store) -> None:
    for username in ("ada", "vic"):
        client = signed_in(app, username)
        page = Page(client.get("/events").text)
        assert page.by_testid("change-password")["href"] == "/password"
        own = Page(client.get("/password").text)
        assert {i.removeprefix("nav-") for i in own.testids("nav-")} == NAV[username]
        assert "password-form" in own.testids() and "password-provisional" not in own.testids()
        assert "<h1>Change password</h1>" in client.get("/password").text
    # An admin's reset makes it provisional again: back to the form first.
    set_password(api_store, "vic", "reset by ada!", by="ada")
    vic = signed_in(app, "vic", "reset by ada!")
    assert vic.get("/", follow_redirects=False).headers["location"] == "/password?next=%2F"
