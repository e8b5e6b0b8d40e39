"""The records officer's pages in a real browser (Debian's chromium, Playwright): search, a FOIA request, a report."""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from archive import audit, index
from archive.importer import Importer
from tests.support import dlp_files
from tests.test_archive_search import DOCX

if TYPE_CHECKING:
    from tests.support.browser import LiveConsole

pytestmark = pytest.mark.browser

SECRET = "Jane Q. Resident"


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("AUP_SCREENSHOT_DIR")  # to look at the pages yourself
    if keep:
        shutil.copy(shot, Path(keep) / f"records-{name}.png")


@pytest.fixture
def archived(live_console: LiveConsole, tmp_path, monkeypatch):
    """Three messages in the archive, indexed; exports go under tmp_path (the default path is relative)."""
    monkeypatch.chdir(tmp_path)
    runtime = live_console.runtime
    messages = [
        dlp_files.message(
            "The reservoir work starts Monday.", subject="Reservoir schedule", to="dwhitfield@example.gov"
        ),
        dlp_files.message(
            f"A complaint about the reservoir came from {SECRET}. Please call her back.",
            [("complaint.docx", dlp_files.docx(["Zephyrine spillway complaint"]), DOCX)],
            subject="Reservoir complaint",
            sender="lpark@example.gov",
            to="dwhitfield@example.gov",
        ),
        dlp_files.message("Lunch on Friday?", subject="Lunch", to="dwhitfield@example.gov"),
    ]
    items = [(f"m{n}", lambda raw=raw: raw) for n, raw in enumerate(messages)]
    Importer(runtime.database, runtime.blobs, runtime.directory, runtime.config.settings.limits, "test").run(
        items, "test"
    )
    index.indexer_for(runtime).run()
    return live_console


def test_a_records_officer_searches_reviews_redacts_and_exports(page: Page, archived: LiveConsole, tmp_path):
    live = archived
    live.add_user("rita", "records-officer")
    live.log_in(page, "rita", path="/records")
    expect(page.get_by_role("heading", name="Records search", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_contain_text(
        ["Records search", "FOIA requests", "Activity reports"]
    )

    page.get_by_label("Search", exact=True).fill("zephyrine")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("table.results caption")).to_contain_text("1 message matches")
    expect(page.locator("table.results tbody tr")).to_have_count(1)
    expect(page.locator("table.results tbody")).to_contain_text("Reservoir complaint")
    expect(page.get_by_text("every message in the archive was fully indexed")).to_be_visible()
    page.get_by_label("Search", exact=True).fill("form:x")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("there is no field form:. Did you mean from:?")
    screenshot(page, tmp_path, "search")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="FOIA requests").click()
    page.get_by_label("Title").fill("Reservoir correspondence")
    page.get_by_label("Requester", exact=True).fill("Pat Reporter, Daily Courant")
    page.get_by_label("Received on").fill("2026-11-23")
    page.get_by_role("button", name="Open request").click()
    expect(page.get_by_role("status")).to_contain_text("Request FOIA-2026-0001 opened; a response is due 2026-11-30.")
    expect(page.get_by_role("heading", level=1)).to_have_text("FOIA-2026-0001: Reservoir correspondence")

    page.get_by_role("link", name="Search the archive for this request").click()
    page.get_by_label("Search", exact=True).fill("reservoir")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("table.results tbody tr")).to_have_count(2)
    expect(page.locator("table.results tbody")).to_contain_text("to review")
    page.get_by_role("button", name="Save this search to FOIA-2026-0001").click()
    expect(page.get_by_role("status")).to_contain_text("Search saved to the request (2 messages).")
    page.get_by_role("link", name="reservoir").click()
    page.get_by_role("link", name="Reservoir complaint").click()
    expect(page.get_by_role("heading", name="Reservoir complaint", level=1)).to_be_visible()
    expect(page.locator("pre.rendered")).to_contain_text(SECRET)
    expect(page.locator("pre.rendered")).to_contain_text("Zephyrine spillway complaint")  # the docx text

    page.get_by_label("Responsive: release").check()
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status")).to_contain_text("Decision recorded: release.")
    page.get_by_label("Text to black out").fill(SECRET)
    page.get_by_label("Exemption", exact=True).select_option("1-210(b)(2)")
    page.get_by_role("button", name="Add redaction").click()
    expect(page.get_by_role("status")).to_contain_text("Redaction added")
    expect(page.locator("pre.rendered .redacted")).to_have_text(["REDACTED 1-210(b)(2)"])
    expect(page.locator("pre.rendered")).not_to_contain_text("Jane")
    screenshot(page, tmp_path, "message")

    page.get_by_role("link", name="‹ FOIA-2026-0001").click()
    expect(page.locator(".counts")).to_contain_text("1 released (1 with redactions)")
    page.get_by_role("button", name="Build export package").click()
    expect(page.get_by_role("status")).to_contain_text("0 released, 1 redacted, 0 withheld")
    with page.expect_download() as waiting:
        page.get_by_role("link", name=re.compile(r"FOIA-2026-0001-.*\.zip")).click()
    data = Path(waiting.value.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        names = package.namelist()
        assert any(name.endswith("/SHA256SUMS") for name in names)
        redacted = [name for name in names if "/redacted/" in name]
        assert len(redacted) == 1 and not any("/messages/" in name for name in names)
        assert b"jane" not in package.read(redacted[0]).lower()
    screenshot(page, tmp_path, "request")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity reports").click()
    page.get_by_label("Address").fill("sortiz@example.gov")
    page.get_by_label("From", exact=True).fill("2026-01-01")
    page.get_by_label("Through").fill("2026-12-31")
    page.get_by_role("button", name="Report").click()
    expect(page.locator(".counts")).to_contain_text("2 messages")
    expect(page.locator(".counts")).to_contain_text("2 sent")
    expect(page.get_by_role("cell", name="dwhitfield@example.gov")).to_be_visible()
    screenshot(page, tmp_path, "report")

    with live.runtime.database.read() as connection:
        actions = {entry["action"] for entry in audit.entries(connection, limit=200, actor="rita")}
    assert {
        "archive.search",
        "archive.view",
        "foia.create",
        "foia.search.save",
        "foia.review",
        "foia.redact",
        "foia.export",
        "foia.download",
        "archive.report",
    } <= actions


def test_other_roles_cannot_open_the_records_pages(page: Page, archived: LiveConsole):
    archived.add_user("ivan", "it-staff")
    archived.log_in(page, "ivan")
    for path in ("/records?q=reservoir", "/foia", "/records/report"):
        response = page.goto(archived.url(path))
        assert response is not None and response.status == 403
    expect(page.get_by_role("navigation", name="Main")).not_to_contain_text("Records search")
