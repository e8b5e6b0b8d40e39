"""The console in a real browser: Debian's chromium, driven by Playwright, against uvicorn on loopback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from tests.support.browser import LiveConsole

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BRAND_BLUE = "rgb(11, 79, 138)"  # console.css --brand: proves the stylesheet loaded under the CSP


def test_an_auditor_sees_their_login_in_the_audit_log_then_logs_out(page: Page, live_console: LiveConsole):
    live_console.add_user("carl", "auditor")
    page.goto(live_console.url("/login"))
    page.get_by_label("Login", exact=True).fill("carl")
    page.get_by_label("Password").fill("not carl's password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("The login or password is not right")
    live_console.log_in(page, "carl", path="/audit")
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("Signed in as carl")
    expect(page.locator("header.top")).to_have_css("background-color", BRAND_BLUE)
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link")).to_have_text(["Home", "Audit log"])  # no Users page for auditors
    login_row = page.locator("table.log tbody tr").filter(has=page.locator("code", has_text="login"))
    expect(login_row).to_have_count(2)  # newest first: the login, then the failed try
    expect(login_row.nth(0).locator("td").nth(2)).to_have_text("carl")
    expect(login_row.nth(0).locator("td").nth(3)).to_have_text("login")
    expect(login_row.nth(1).locator("td").nth(3)).to_have_text("login.failed")
    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_role("status")).to_contain_text("The audit chain is intact")
    live_console.log_out(page)
    expect(page.get_by_role("status")).to_contain_text("You are logged out.")
    page.goto(live_console.url("/audit"))
    expect(page).to_have_url(live_console.url("/login?next=/audit"))


def test_an_admin_sees_the_users_page_and_it_renders(page: Page, live_console: LiveConsole, tmp_path: Path):
    live_console.add_user("ann", "admin")
    live_console.add_user("rita", "records-officer")
    live_console.log_in(page, "ann")
    expect(page.get_by_role("heading", name="Messages today")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page).to_have_url(live_console.url("/users"))
    expect(page.get_by_role("link", name="Users")).to_have_attribute("aria-current", "page")
    logins = page.locator("table tbody th[scope=row]")
    expect(logins).to_have_text(["ann", "rita"])
    expect(page.locator("table tbody tr").nth(1)).to_contain_text("records-officer")
    shot = tmp_path / "users.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    keep = os.environ.get("AUP_SCREENSHOT_DIR")  # to look at the page yourself
    if keep:
        shutil.copy(shot, Path(keep) / "console-users.png")
