"""A FOIA request end to end: mail sent over SMTP, searched, reviewed, redacted, exported, checked with sha256sum."""

from __future__ import annotations

import csv
import html
import json
import shutil
import subprocess
import zipfile
from datetime import date
from pathlib import Path

import pytest

from archive import audit, checkpoint, foia, index, search
from archive.config import FoiaSettings
from milter import cli
from tests.support import dlp_files
from tests.test_archive_search import DOCX, mail, send

SECRET = "Jane Q. Resident"
SECRET_ADDRESS = "42 Elm Street"


def test_due_dates_count_business_days_and_the_state_calendar():
    settings = FoiaSettings()
    assert foia.business_days_after(date(2026, 11, 23), 4, settings) == date(2026, 11, 30)  # Thanksgiving skipped
    assert foia.business_days_after(date(2026, 11, 23), 4, FoiaSettings(holiday_calendar=None)) == date(2026, 11, 27)
    assert foia.business_days_after(date(2026, 11, 20), 1, FoiaSettings(holidays=[date(2026, 11, 23)])) == date(
        2026, 11, 24
    )


@pytest.fixture
def request_with_mail(make_gateway, tmp_path):
    gateway = make_gateway({"archive": {"exports": str(tmp_path / "exports")}})
    port = gateway.port
    send(
        port,
        mail("sortiz@example.gov", "dwhitfield@example.gov", "Reservoir schedule", "The reservoir work starts Monday."),
    )
    send(
        port,
        mail(
            "lpark@example.gov",
            "dwhitfield@example.gov",
            "Reservoir complaint",
            f"A complaint about the reservoir came from {SECRET}, who lives at\n{SECRET_ADDRESS}. Please call her back.",
            attachment=(
                "complaint.docx",
                dlp_files.docx([f"Complainant: {SECRET.upper()}", "Reservoir smell near the dam"]),
                DOCX,
            ),
        ),
    )
    send(
        port,
        mail(
            "dwhitfield@example.gov",
            "mvasquenza@example.gov",
            "Reservoir personnel matter",
            "The reservoir operator's discipline file is attached to the HR case.",
        ),
    )
    send(port, mail("sortiz@example.gov", "dwhitfield@example.gov", "Lunch", "Not about the reservoir at all."))
    index.indexer_for(gateway.runtime).run()
    return gateway


def test_a_foia_request_end_to_end(request_with_mail, tmp_path, capsys):
    gateway = request_with_mail
    runtime = gateway.runtime
    config = gateway.config.path
    settings = runtime.config.settings.archive.foia

    assert (
        cli.main(
            [
                "--config",
                str(config),
                "archive",
                "foia",
                "create",
                "--title",
                "Reservoir correspondence",
                "--requester",
                "Pat Reporter, Daily Courant",
                "--received",
                "2026-11-23",
            ]
        )
        == 0
    )
    assert "FOIA-2026-0001, due 2026-11-30" in capsys.readouterr().out
    database = runtime.database
    with database.read() as connection:
        request = foia.listing(connection)[0]
        found = search.search(connection, "reservoir", sort="oldest")
    assert found.total == 4
    by_subject = {hit["subject"]: hit["record_id"] for hit in found.hits}
    request_id = request["id"]

    with database.write() as connection:
        foia.save_search(connection, "rita", request_id, "reservoir", found.total)
        # a first decision, then a changed mind: both stay in the history
        foia.review(
            connection,
            "rita",
            settings,
            request_id,
            foia.Review(by_subject["Reservoir schedule"], True, "withhold", "1-210(b)(1)", "draft?"),
        )
        foia.review(
            connection,
            "rita",
            settings,
            request_id,
            foia.Review(by_subject["Reservoir schedule"], True, "release", None, "final, not a draft"),
        )
        foia.review(
            connection,
            "rita",
            settings,
            request_id,
            foia.Review(by_subject["Reservoir complaint"], True, "release", None, None),
        )
        foia.review(
            connection,
            "rita",
            settings,
            request_id,
            foia.Review(by_subject["Reservoir personnel matter"], True, "withhold", "1-210(b)(2)", None),
        )
        foia.review(
            connection,
            "rita",
            settings,
            request_id,
            foia.Review(by_subject["Lunch"], False, None, None, "mentions it only"),
        )
        foia.redact(
            connection,
            "rita",
            settings,
            request_id,
            by_subject["Reservoir complaint"],
            text=SECRET,
            reason="1-210(b)(2)",
        )
        foia.redact(
            connection,
            "rita",
            settings,
            request_id,
            by_subject["Reservoir complaint"],
            text=SECRET_ADDRESS,
            reason="1-210(b)(2)",
        )
        mistaken = foia.redact(
            connection,
            "rita",
            settings,
            request_id,
            by_subject["Reservoir complaint"],
            text="Monday",
            reason="1-210(b)(1)",
        )
        foia.unredact(connection, "rita", request_id, mistaken)
        with pytest.raises(foia.FoiaError, match="needs the exemption"):
            foia.review(
                connection, "rita", settings, request_id, foia.Review(by_subject["Lunch"], True, "withhold", None, None)
            )
        with pytest.raises(foia.FoiaError, match="must be an exemption from the configured list"):
            foia.redact(connection, "rita", settings, request_id, by_subject["Lunch"], text="x", reason="because")
        history = foia.review_history(connection, request_id, by_subject["Reservoir schedule"])
        assert [(r["disposition"], r["exemption"]) for r in history] == [("withhold", "1-210(b)(1)"), ("release", None)]
        assert foia.summary(connection, request_id) == {
            "reviewed": 4,
            "responsive": 3,
            "released": 2,
            "withheld": 1,
            "redacted": 1,
        }

    assert cli.main(["--config", str(config), "archive", "foia", "export", str(request_id)]) == 0
    out = capsys.readouterr().out
    assert "2 released" not in out and "1 released, 1 redacted, 1 withheld" in out
    folder = next(Path(runtime.config.settings.archive.exports).glob("FOIA-2026-0001-*/"))
    unpacked = tmp_path / "from-zip"
    with zipfile.ZipFile(folder.with_suffix(".zip")) as archive:
        archive.extractall(unpacked)
    for package in (folder, unpacked / folder.name):
        checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=package, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.count(": OK") == len([p for p in package.rglob("*") if p.is_file()]) - 1

    record = by_subject
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == sorted(
        [
            "README.txt",
            "SHA256SUMS",
            "checkpoint.txt",
            "decision-log.csv",
            "manifest.csv",
            "manifest.json",
            f"messages/00001-{record['Reservoir schedule']}.eml",
            f"redacted/00002-{record['Reservoir complaint']}.html",
        ]
    )
    released = folder / f"messages/00001-{record['Reservoir schedule']}.eml"
    with database.read() as connection:
        original = runtime.blobs.get(foia.records.get(connection, record["Reservoir schedule"])["blob_sha256"])
    assert released.read_bytes() == original  # byte for byte

    redacted = folder / f"redacted/00002-{record['Reservoir complaint']}.html"
    page = redacted.read_bytes()
    visible = html.unescape(page.decode("utf-8"))
    for hidden in (SECRET, SECRET_ADDRESS, "Jane", "Elm Street"):
        assert hidden.lower().encode() not in page.lower() and hidden.lower() not in visible.lower()
    assert (
        "REDACTED 1-210(b)(2)" in visible
        and "Please call her back" in visible
        and "Reservoir smell near the dam" in visible
    )
    assert "1-210(b)(1)" not in visible  # the redaction that was taken back blacks out nothing
    for path in folder.rglob("*"):  # the name appears nowhere in the package, not in the manifest or the log either
        if path.is_file():
            assert b"jane" not in path.read_bytes().lower(), path

    manifest = json.loads((folder / "manifest.json").read_text())
    rows = {m["record_id"]: m for m in manifest["messages"]}
    assert set(rows) == {
        record["Reservoir schedule"],
        record["Reservoir complaint"],
        record["Reservoir personnel matter"],
    }
    withheld = rows[record["Reservoir personnel matter"]]
    assert (withheld["disposition"], withheld["exemption"], withheld["file"]) == ("withhold", "1-210(b)(2)", "")
    assert (
        rows[record["Reservoir complaint"]]["redactions"] == 3
    )  # the name twice (body and attachment) and the address
    assert rows[record["Reservoir schedule"]]["file_sha256"] == rows[record["Reservoir schedule"]]["original_sha256"]
    with (folder / "manifest.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    with (folder / "decision-log.csv").open(newline="") as handle:
        actions = [row["action"] for row in csv.DictReader(handle)]
    assert actions[:2] == ["created", "search.saved"] and actions.count("review") == 5
    assert actions.count("redaction.added") == 3 and actions.count("redaction.removed") == 1
    assert "sha256sum -c SHA256SUMS" in (folder / "README.txt").read_text()

    kept = checkpoint.parse((folder / "checkpoint.txt").read_text())
    assert (
        cli.main(["--config", str(config), "archive", "verify", "--checkpoint", str(folder / "checkpoint.txt"), "-q"])
        == 0
    )
    assert f"record {kept.records} still has hash" in capsys.readouterr().out
    with database.read() as connection:
        assert [e["action"] for e in audit.entries(connection, limit=20, action="foia.export")] == ["foia.export"]
        assert foia.events(connection, request_id)[-1]["action"] == "exported"

    # the check is real: one changed byte in a released message fails it
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    eml = next(tampered.glob("messages/*.eml"))
    eml.chmod(0o644)
    eml.write_bytes(eml.read_bytes().replace(b"Monday", b"Tuesday"))
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tampered, capture_output=True, text=True)
    assert checked.returncode != 0 and "FAILED" in checked.stdout


def test_an_export_with_nothing_reviewed_says_what_to_do(request_with_mail, capsys):
    config = request_with_mail.config.path
    assert (
        cli.main(
            ["--config", str(config), "archive", "foia", "create", "--title", "Anything", "--requester", "Someone"]
        )
        == 0
    )
    capsys.readouterr()
    assert cli.main(["--config", str(config), "archive", "foia", "export", "1"]) == 2
    assert "no message has been marked responsive yet" in capsys.readouterr().err
