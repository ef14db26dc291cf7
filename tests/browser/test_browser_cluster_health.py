"""The health page in Chromium once a cluster coordinator has reported: its line, nodes,
workers (an outbox that cannot store drawn as an error) and cameras. Screenshot:
cluster-health.png."""

from __future__ import annotations

from browser_support import Console, sign_in
from cluster_support import document
from playwright.sync_api import expect

from safecity.store.cluster import write_status


def test_the_health_page_shows_the_cluster_and_its_outbox_trouble(
    browser, console: Console, screenshots
) -> None:
    page = sign_in(browser, console, "olga")
    page.goto(f"{console.url}/health")
    expect(page.locator('[data-testid="health-table"]')).to_be_visible()
    expect(page.locator('[data-testid="cluster"]')).to_be_hidden()  # nothing reported yet

    write_status(console.store, document())
    head = page.locator('[data-testid="cluster-coordinator"][data-coordinator="head-1"]')
    expect(head).to_be_visible(timeout=15_000)  # the page asks every 5 s
    expect(head.locator('[data-testid="cluster-state"]')).to_contain_text("reporting")
    expect(head.locator('[data-testid="cluster-node"]')).to_have_count(2)
    broken = head.locator('[data-testid="cluster-worker"][data-worker="w1-aaaaaaaa"]')
    expect(broken).to_have_class("outbox-error")
    expect(broken.locator('[data-testid="worker-error"]')).to_contain_text(
        "the database cannot be reached"
    )
    late = head.locator('[data-testid="cluster-worker"][data-worker="w2-bbbbbbbb"]')
    expect(late).to_have_class("outbox-late")
    expect(late.locator('[data-testid="worker-outbox"]')).to_contain_text("3 (0.0 MB), oldest")
    cameras = head.locator('[data-testid="cluster-camera"]')
    expect(cameras).to_have_count(3)
    expect(
        head.locator('[data-testid="cluster-camera"][data-camera="gate-3"] td').nth(1)
    ).to_have_text("10.0.0.2")
    page.screenshot(path=screenshots / "cluster-health.png", full_page=True)
    page.context.close()
