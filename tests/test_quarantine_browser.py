"""The IT quarantine page in a real browser (Debian's chromium): log in, filter, preview safely, release.

The gateway runs for real with a private Postfix downstream; the console is
served by uvicorn on the gateway's own runtime. After the release the
message is in the recipient's Maildir. The preview loads nothing the sender
chose: the page fixture fails on any blocked load or console error.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from archive import audit
from tests.support.quarantine_helpers import ENFORCE, PDF, STRANGER, mail, pdf, send, zip_of

if TYPE_CHECKING:
    from tests.support.servers import PostfixServer

pytestmark = [pytest.mark.browser, pytest.mark.postfix]

SORTIZ = "sortiz@example.gov"
HOSTILE_HTML = (
    '<p>Please find our <b>quote</b> attached.</p><img src="http://198.51.100.7/track.png">'
    '<script>alert(1)</script><p style="color:red" onclick="x()">Regards, Acme</p>'
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_staff_preview_a_quarantined_message_and_release_it_to_the_mailbox(
    make_gateway, postfix: PostfixServer, page: Page, tmp_path: Path
):
    from tests.support.browser import LiveConsole

    gateway = make_gateway(ENFORCE, deliver_url=postfix.url)
    raw = mail(
        ("quote.pdf", pdf(), PDF),
        ("extras.zip", zip_of([("prices.csv", b"salt,40\n")]), "application/zip"),
        body="Please find our quote attached.\nRegards, Acme\n",
        html=HOSTILE_HTML,
    )
    assert send(gateway.port, raw, STRANGER, [SORTIZ]) == (250, "")
    console = LiveConsole(gateway.runtime).start()
    try:
        console.add_user("chris", "it-staff")
        console.log_in(page, "chris", path="/quarantine")
        expect(page.get_by_role("heading", name="IT quarantine", level=1)).to_be_visible()
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="IT quarantine")).to_have_attribute(
            "aria-current", "page"
        )
        rows = page.locator("table.quarantine tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(STRANGER)
        expect(rows.first).to_contain_text("unknown_sender")
        expect(rows.first.locator("td[data-label=Waiting]")).to_have_text("0 min")
        _screenshot(page, tmp_path, "quarantine-list.png")

        page.get_by_label("Sender").fill("nobody-matches")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_text(["Nothing is waiting that matches."])
        page.get_by_role("link", name="Clear").click()

        rows.first.get_by_role("link", name="Review").click()
        expect(page.get_by_role("heading", name="Quote for road salt", level=1)).to_be_visible()
        files = page.locator("table.files tbody tr")
        expect(files).to_have_count(3)  # the PDF, the zip, and the file inside the zip
        expect(files.nth(0)).to_contain_text("quote.pdf")
        expect(files.nth(0)).to_contain_text("PDF document")
        expect(files.nth(2)).to_contain_text("prices.csv")
        expect(page.locator("pre.body-text")).to_contain_text("Please find our quote attached.")
        preview = page.locator(".body-html")
        expect(preview).to_contain_text("Regards, Acme")
        expect(preview.locator("img, script, [style], [onclick]")).to_have_count(0)
        expect(page.locator(".findings")).to_contain_text("has not written to")
        _screenshot(page, tmp_path, "quarantine-item.png")

        page.get_by_role("button", name="Release").click()
        expect(page).to_have_url(console.url("/quarantine"))
        expect(page.get_by_role("status")).to_contain_text(f"Released to {SORTIZ}.")
        expect(rows).to_have_text(["Nothing is waiting."])
    finally:
        console.stop()

    deadline = time.monotonic() + 30
    while not [m for m in postfix.messages() if b'filename="quote.pdf"' in m.data]:
        assert time.monotonic() < deadline, (
            f"the release did not reach the mailbox; Postfix log:\n{postfix.log()[-3000:]}"
        )
        time.sleep(0.1)
    [delivered] = [m for m in postfix.messages() if b'filename="quote.pdf"' in m.data]
    assert delivered.rcpt == SORTIZ and b"Quote for road salt" in delivered.data
    with gateway.runtime.database.read() as connection:
        actions = [
            (e["actor"], e["action"]) for e in audit.entries(connection) if e["action"].startswith("quarantine.")
        ][::-1]
    assert actions == [("chris", "quarantine.view"), ("chris", "quarantine.release"), ("chris", "quarantine.decide")]


def _screenshot(page: Page, folder: Path, name: str) -> None:
    shot = folder / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("AUP_SCREENSHOT_DIR")  # to look at the page yourself
    if keep:
        shutil.copy(shot, Path(keep) / name)
