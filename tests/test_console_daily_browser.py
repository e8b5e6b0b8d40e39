"""Daily console work in a real browser (Debian's chromium): home pages, bulk decisions, history, at 1280 and 390 px.

The gateway runs for real (broadcasts and quarantined files arrive over
SMTP); the console is served by uvicorn on its runtime. On a 390 px phone no
list page may scroll sideways: its tables become stacked cards.
"""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from archive import foia, index
from tests.test_console_daily import approval_config, hold_broadcast, quarantine_file

if TYPE_CHECKING:
    from tests.support.browser import LiveConsole

pytestmark = pytest.mark.browser

PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 800}
LONG_SUBJECT = "Invoice_for_road_salt_delivery_number_4471_and_the_winter_contract_renewal_2026_2027"


@pytest.fixture
def busy_console(make_gateway):
    from tests.support.browser import LiveConsole

    gateway = make_gateway(approval_config())
    runtime = gateway.runtime
    hold_broadcast(gateway, "Road work")
    hold_broadcast(gateway, LONG_SUBJECT)
    quarantine_file(gateway, "Quote 1", days_ago=3)
    quarantine_file(gateway, LONG_SUBJECT)
    with runtime.database.write() as connection:
        foia.create(
            connection,
            "rita",
            runtime.config.settings.archive.foia,
            kind="foia",
            title="Every message about road salt and the winter contract, 2025 and 2026",
            requester="A. Reporter, The Daily Example",
            received_on=date.today(),
        )
    index.indexer_for(runtime).run()
    console = LiveConsole(runtime).start()
    yield console
    console.stop()


LIST_PAGES = (
    "/",
    "/approvals",
    "/quarantine",
    "/records?q=",
    "/foia",
    "/audit",
    "/users",
    "/history/approvals",
    "/history/quarantine",
)


def scroll_width(page: Page) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_list_page_fits_a_phone_and_the_desktop_without_sideways_scrolling(
    page: Page, busy_console: LiveConsole, tmp_path: Path
):
    busy_console.add_user("ann", "admin")
    busy_console.log_in(page, "ann")
    expect(page.get_by_role("heading", name="Waiting for you")).to_be_visible()
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        for path in LIST_PAGES:
            page.goto(busy_console.url(path))
            expect(page.locator("main h1")).to_be_visible()
            assert scroll_width(page) <= size["width"], f"{path} scrolls sideways at {size['width']} px"
    page.goto(busy_console.url("/quarantine"))
    header = page.locator("table.quarantine thead")
    expect(header).not_to_be_in_viewport()  # on a phone each row is a card with labelled cells
    first_row = page.locator("table.quarantine tbody tr").first
    assert first_row.locator("td[data-label=From]").evaluate("cell => getComputedStyle(cell).display") == "block"
    shot = tmp_path / "quarantine-phone.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("AUP_SCREENSHOT_DIR")  # to look at the page yourself
    if keep:
        shutil.copy(shot, Path(keep) / "console-quarantine-phone.png")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_admin_on_a_phone_releases_two_quarantined_messages_at_once_then_finds_them_in_the_history(
    page: Page, busy_console: LiveConsole
):
    busy_console.add_user("ann", "admin")
    page.set_viewport_size(PHONE)
    busy_console.log_in(page, "ann")
    waiting = page.locator("ul.worklist li")
    expect(waiting.filter(has_text="waiting for IT review")).to_have_text(
        "2 messages with files waiting for IT review, the oldest for 3 d."
    )
    waiting.filter(has_text="waiting for IT review").get_by_role("link").click()
    expect(page).to_have_url(busy_console.url("/quarantine"))
    boxes = page.get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Release").click()
    expect(page).to_have_url(busy_console.url("/quarantine"))
    expect(page.get_by_role("status")).to_contain_text("Released: 2 of 2.")
    expect(page.locator("table.quarantine tbody")).to_contain_text("Nothing is waiting")
    page.get_by_role("link", name="Decided messages").click()
    rows = page.locator("table.history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("released")
    expect(rows.nth(0)).to_contain_text("ann")
    assert scroll_width(page) <= PHONE["width"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_admin_on_the_desktop_approves_one_of_two_broadcasts_from_the_list(page: Page, busy_console: LiveConsole):
    busy_console.add_user("ann", "admin")
    busy_console.log_in(page, "ann", path="/approvals")
    page.get_by_role("checkbox", name="Choose Road work").check()
    page.get_by_label("Note for the senders").fill("Thanks for the notice.")
    page.get_by_role("button", name="Approve and send").click()
    expect(page.get_by_role("status")).to_contain_text("Approved: 1 of 1.")
    rows = page.locator("table.approvals tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(LONG_SUBJECT)
    page.get_by_role("button", name="Reject").click()  # nothing ticked
    expect(page.get_by_role("status")).to_contain_text("Tick the messages to decide")
