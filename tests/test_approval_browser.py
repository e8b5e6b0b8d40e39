"""The approvals pages in a real browser: Debian's chromium, driven by Playwright, against the gateway's own console.

Broadcasts arrive over real SMTP; the department head logs in, reads the
message and approves it; an approver who is not logged in follows the link
from their e-mail and confirms. The `page` fixture fails a test on any
browser error, a CSP violation included.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from console import users
from tests.support.approval_support import (
    approval_config,
    broadcast,
    delivered_to,
    links_in,
    parsed,
    send,
    wait_for_notice,
)
from tests.support.servers import wait_until

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
BRAND_BLUE = "rgb(11, 79, 138)"
DANGER_RED = "rgb(180, 35, 24)"  # console.css --bad: approvals.css loaded under the CSP


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("AUP_SCREENSHOT_DIR")  # to look at the page yourself
    if keep:
        shutil.copy(shot, Path(keep) / name)


def test_dana_logs_in_reads_the_held_broadcast_and_approves_it(make_gateway, sink, page: Page, tmp_path):
    gateway = make_gateway(approval_config())
    base = gateway.config.settings.console.base_url
    with gateway.runtime.database.write() as connection:
        users.add(connection, "dana", PASSWORD, "department-head", "dwhitfield@example.gov")
    send(gateway.port, broadcast(), "sortiz@example.gov", ["all-staff@example.gov"])

    page.goto(f"{base}/approvals")
    page.get_by_label("Login", exact=True).fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/approvals")
    expect(page.get_by_role("heading", name="Broadcasts waiting for approval")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals")).to_have_attribute(
        "aria-current", "page"
    )
    row = page.locator("table.approvals tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Sam Ortiz")
    expect(row).to_contain_text("All Staff (all-staff@example.gov)")
    expect(row).to_contain_text("department head")
    screenshot(page, tmp_path, "approvals-list.png")

    row.get_by_role("link", name="Main Street closed Friday").click()
    expect(page.get_by_role("heading", name="Main Street closed Friday", level=1)).to_be_visible()
    expect(page.locator("pre.message-text")).to_contain_text("Please use Elm Street.")
    expect(page.locator(".message-html")).to_contain_text("Please use Elm Street.")
    expect(page.locator(".message-html img")).to_have_count(0)
    expect(page.locator("blockquote.note")).to_have_text("Sam Ortiz\nFor: Dana Whitfield – Director of Public Works")
    expect(page.get_by_role("cell", name="detour-map.bin")).to_be_visible()
    expect(page.locator("header.top")).to_have_css("background-color", BRAND_BLUE)
    expect(page.get_by_role("button", name="Reject")).to_have_css("background-color", DANGER_RED)
    screenshot(page, tmp_path, "approval-page.png")

    page.get_by_label("A note for the record (optional)").fill("Thanks, Sam.")
    page.get_by_role("button", name="Approve and send").click()
    expect(page).to_have_url(f"{base}/approvals")
    expect(page.get_by_role("status")).to_contain_text("Approved: the message is being delivered")
    expect(page.locator("table.approvals tbody tr")).to_contain_text("Nothing is waiting for you")
    [data] = wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the approved broadcast")
    plain = parsed(data).get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert plain.rstrip().endswith("Sam Ortiz\nFor: Dana Whitfield – Director of Public Works")


def test_lee_follows_the_emailed_link_without_logging_in_and_rejects(
    make_gateway, sink, browser: Browser, page: Page, tmp_path
):
    gateway = make_gateway(approval_config())
    send(gateway.port, broadcast(subject="Raffle for the food bank"), "sortiz@example.gov", ["all-staff@example.gov"])
    lee = links_in(wait_for_notice(sink, "approval-request", "lpark@example.gov"))
    page.goto(lee["reject"])
    expect(page.get_by_role("heading", name="Reject this broadcast?")).to_be_visible()
    expect(page.get_by_text("You are deciding as Lee Park")).to_be_visible()
    screenshot(page, tmp_path, "approval-link.png")
    page.get_by_label("Reason").fill("Charity drives go through the Wellness Committee.")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("heading", name="Rejected")).to_be_visible()
    told = wait_for_notice(sink, "approval-rejected", "sortiz@example.gov")
    assert "Charity drives go through the Wellness Committee." in told.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page.goto(lee["reject"])  # the link is spent
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
    assert delivered_to(sink, "all-staff@example.gov") == []
