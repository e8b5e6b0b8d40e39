"""Completeness: every search says which messages of its period have content the index could not hold."""

from __future__ import annotations

from datetime import date

import pytest

from archive import index, search
from archive.importer import Importer
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database
from milter.mail.settings import LimitSettings
from tests.support import dlp_files

SENT = b"Mon, 23 Nov 2026 10:00:00 +0000"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


def dated(raw: bytes, day: str) -> bytes:
    return raw.replace(SENT, f"{day} 10:00:00 +0000".encode())


@pytest.fixture
def archive(tmp_path, database_url):
    database = Database(database_url)
    database.create_schema()
    blobs = BlobStore(tmp_path / "blobs")
    messages = {
        "plain": dated(dlp_files.message("Nothing hidden here, budget notes.", subject="Plain"), "Mon, 2 Mar 2026"),
        "aes-zip": dated(
            dlp_files.message(
                "budget attached",
                [("payroll.zip", dlp_files.zip_aes({"payroll.txt": b"budget 123-45-6789"}), "application/zip")],
                subject="Locked zip",
            ),
            "Tue, 3 Mar 2026",
        ),
        "locked-pdf": dated(
            dlp_files.message(
                "budget attached",
                [("plan.pdf", dlp_files.encrypted_pdf(dlp_files.pdf(["budget secret"])), "application/pdf")],
                subject="Locked PDF",
            ),
            "Wed, 4 Mar 2026",
        ),
        "photo": dated(
            dlp_files.message("a scan of the budget", [("scan.png", PNG, "image/png")], subject="Photo"),
            "Thu, 5 Mar 2026",
        ),
        "readable-pdf": dated(
            dlp_files.message(
                "budget attached",
                [("open.pdf", dlp_files.pdf(["budget figures"]), "application/pdf")],
                subject="Open PDF",
            ),
            "Fri, 6 Mar 2026",
        ),
    }
    items = [(name, lambda raw=raw: raw) for name, raw in messages.items()]
    assert Importer(database, blobs, None, LimitSettings(), "test").run(items, "test").imported == 5
    index.Indexer(database, blobs, LimitSettings()).run()
    yield database
    database.dispose()


def test_every_search_counts_the_period_messages_that_could_not_be_indexed(archive):
    with archive.read() as connection:
        everything = search.search(connection, "budget")
        march_3_to_4 = search.search(connection, "budget after:2026-03-03 before:2026-03-05")
        after_them = search.search(connection, "budget after:2026-03-06")
        total, listed = search.incomplete(connection, None, None)
    assert everything.incomplete == 3  # the locked zip, the locked PDF and the photo; never the plain or open PDF
    assert march_3_to_4.incomplete == 2 and (march_3_to_4.after, march_3_to_4.before) == (
        date(2026, 3, 3),
        date(2026, 3, 5),
    )
    assert after_them.incomplete == 0
    assert total == 3
    by_subject = {row["subject"]: [(p["kind"], p["detail"]) for p in row["problems"]] for row in listed}
    assert set(by_subject) == {"Locked zip", "Locked PDF", "Photo"}
    assert any(kind == "encrypted" and "payroll.txt" in detail for kind, detail in by_subject["Locked zip"])
    assert any(kind == "encrypted" and "plan.pdf" in detail for kind, detail in by_subject["Locked PDF"])
    assert by_subject["Photo"] == [("unsupported", "scan.png (image/png): its contents are not searchable as text")]


def test_the_readable_pdf_text_is_found_and_the_locked_ones_are_not(archive):
    with archive.read() as connection:
        assert search.search(connection, '"budget figures"').total == 1
        assert (
            search.search(connection, "secret").total == 0
        )  # inside the encrypted PDF: why it is listed as incomplete
