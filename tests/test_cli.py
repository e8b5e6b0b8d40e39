"""The `aup-milter` command as an admin uses it."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from archive import audit
from console import users
from milter import cli
from milter.kernel.db import Database
from milter.kernel.passwords import PasswordFile
from tests.conftest import ROOT, message_bytes, write_config
from tests.support.servers import wait_for_port


def test_serve_with_no_flags_uses_the_embedded_default_and_delivers_to_the_outbox(tmp_path):
    """`make run` in a fresh folder: SMTP on 10025, console on 8025, SQLite, blobs and outbox under var/."""
    env = {k: v for k, v in os.environ.items() if k != "AUP_MILTER_CONFIG"}
    process = subprocess.Popen(
        [shutil.which("aup-milter") or str(ROOT / ".venv/bin/aup-milter"), "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(10025)
        wait_for_port(8025)
        swaks = subprocess.run(
            [
                "swaks",
                "--server",
                "127.0.0.1:10025",
                "--from",
                "sortiz@example.gov",
                "--to",
                "dwhitfield@example.gov",
                "--header",
                "Subject: from swaks",
                "--silent",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert swaks.returncode == 0, swaks.stdout + swaks.stderr
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not list((tmp_path / "var/outbox/new").glob("*")):
            time.sleep(0.1)
        delivered = list((tmp_path / "var/outbox/new").glob("*"))
        assert len(delivered) == 1
        content = delivered[0].read_bytes()
        assert b"Delivered-To: dwhitfield@example.gov" in content and b"Subject: from swaks" in content
        assert (tmp_path / "var/aup-milter.kernel.db").is_file()
        assert any((tmp_path / "var/blobs").rglob("*"))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=20)  # reads and closes stderr: an unclosed pipe is an error under -W error


def test_users_add_hashes_the_password_and_audits(tmp_path, database_url, monkeypatch, capsys):
    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\n"))
    assert (
        cli.main(["--config", str(path), "users", "add", "records1", "--role", "records-officer", "--password-stdin"])
        == 0
    )
    assert "added records1 (records-officer)" in capsys.readouterr().out
    database = Database(database_url)
    with database.read() as connection:
        user = users.get(connection, "records1")
        assert user is not None and user["role"] == "records-officer"
        assert user["password_hash"].startswith("$argon2") and "correct horse" not in user["password_hash"]
        assert users.verify(user, "correct horse battery") and not users.verify(user, "wrong password!!")
        entry = audit.entries(connection, limit=1)[0]
        assert (entry["action"], entry["target"], entry["actor"].startswith("cli:")) == ("user.add", "records1", True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli.main(["--config", str(path), "users", "add", "weak", "--role", "admin", "--password-stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    database.dispose()


def test_smtp_passwd_prints_a_line_the_password_file_accepts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-submission\n"))
    assert cli.main(["smtp-passwd", "sortiz@example.gov", "--password-stdin"]) == 0
    line = capsys.readouterr().out.strip()
    (tmp_path / "passwd").write_text(f"# submission users\n{line}\n")
    passwords = PasswordFile(tmp_path / "passwd")
    assert passwords.verify("sortiz@example.gov", "s3cret-submission")
    assert not passwords.verify("sortiz@example.gov", "guess")
    assert not passwords.verify("nobody@example.gov", "s3cret-submission")


def test_check_reports_direction_decision_and_findings(tmp_path, capsys):
    path = write_config(tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused")
    eml = tmp_path / "anon.eml"
    eml.write_bytes(message_bytes(sender="Anonymous <anonymous@example.gov>", to="dwhitfield@example.gov"))
    assert cli.main(["--config", str(path), "check", str(eml), "--json"]) == 3  # held
    result = json.loads(capsys.readouterr().out)
    assert (result["direction"], result["action"], result["hold_queue"]) == ("internal", "hold", "quarantine")
    assert [f["policy"] for f in result["findings"]] == ["anonymous_sender"]
    assert {"policy", "mode", "action", "reason", "evidence"} <= set(result["findings"][0])

    assert (
        cli.main(
            [
                "--config",
                str(path),
                "check",
                str(eml),
                "--client-ip",
                "198.51.100.7",
                "--rcpt",
                "dwhitfield@example.gov",
            ]
        )
        == 1  # from outside, the local domain's own address fails the sender checks: rejected
    )
    text = capsys.readouterr().out
    assert "direction: inbound" in text and "anonymous_sender [enforce] asks hold" in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_queue_list_show_and_retry(tmp_path, database_url, capsys):
    from milter.delivery import queue

    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    database = Database(database_url)
    database.create_schema()
    with database.write() as connection:
        delivery = queue.enqueue(
            connection,
            message_id="MSG1",
            blob_sha256="0" * 64,
            mail_from="a@example.gov",
            rcpts=["b@example.gov", "c@example.gov"],
            origin="relay",
        )
        rcpt_ids = [r.id for w in queue.claim_due(connection, "test", 60, 10) for r in w.recipients]
        for rcpt_id in rcpt_ids:
            queue.mark(
                connection,
                rcpt_id,
                queue.QUEUED,
                "451 4.4.1 down",
                attempts=1,
                next_attempt_at=queue.utcnow().replace(year=2099),
            )
    assert cli.main(["--config", str(path), "queue", "list"]) == 0
    listing = capsys.readouterr().out
    assert "MSG1" in listing and "b@example.gov" in listing and "451 4.4.1 down" in listing
    assert cli.main(["--config", str(path), "queue", "show", "MSG1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert cli.main(["--config", str(path), "queue", "retry", str(delivery)]) == 0
    assert "2 recipients will be tried again now" in capsys.readouterr().out
    with database.read() as connection:
        assert len(queue.claim_due(connection, "other", 60, 10)[0].recipients) == 2
    database.dispose()


def test_check_exit_status_says_deliver_reject_or_hold(tmp_path, capsys):
    path = write_config(tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused")
    plain, anonymous, oversized = tmp_path / "plain.eml", tmp_path / "anon.eml", tmp_path / "big.eml"
    plain.write_bytes(message_bytes(sender="Sam Ortiz <sortiz@example.gov>", to="dwhitfield@example.gov"))
    anonymous.write_bytes(message_bytes(sender="Anonymous <anonymous@example.gov>", to="dwhitfield@example.gov"))
    oversized.write_bytes(message_bytes(sender="Sam Ortiz <sortiz@example.gov>", to="dwhitfield@example.gov"))
    big = write_config(
        tmp_path / "small",
        "sqlite:///:memory:",
        "maildir:/tmp/unused",
        {"policies": {"size": {"max_bytes": {"internal": "1KiB"}, "action": "reject"}}},
    )
    oversized.write_bytes(oversized.read_bytes() + b"x" * 4096 + b"\r\n")
    assert cli.main(["--config", str(path), "check", str(plain)]) == 0
    assert cli.main(["--config", str(path), "check", str(anonymous)]) == 3
    assert cli.main(["--config", str(big), "check", str(oversized)]) == 1
    assert cli.main(["--config", str(path), "check", str(tmp_path / "no-such.eml")]) == 2
    assert "check: cannot read" in capsys.readouterr().err
