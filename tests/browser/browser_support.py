"""What the browser tests share: the console under test and signing in through its page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safecity.config import SafecityConfig

PASSWORD = "correct horse battery"


@dataclass
class Console:
    url: str
    store: object
    config: SafecityConfig
    events: int
    data_dir: Path
    watchlist_id: int


def sign_in(browser, console: Console, username: str):
    """A fresh browser context signed in through the login page; returns the page."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{console.url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page
