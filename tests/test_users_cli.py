"""`aup-milter users set|disable|enable|reset-password`: accounts managed from the command line, every change audited."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from archive import audit
from console import users
from milter import cli
from milter.kernel.db import Database, utcnow
from tests.conftest import write_config

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def run(path: Path, *args: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(["--config", str(path), "users", *args])


def test_set_disable_enable_and_reset_password(tmp_path, database_url, monkeypatch, capsys):
    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    assert (
        run(
            path,
            "add",
            "dana",
            "--role",
            "auditor",
            "--password-stdin",
            stdin="first password 1\n",
            monkeypatch=monkeypatch,
        )
        == 0
    )
    assert run(path, "set", "dana", "--role", "department-head", "--email", "DWhitfield@example.gov") == 0
    assert run(path, "disable", "dana") == 0
    database = Database(database_url)
    with database.read() as connection:
        user = users.get(connection, "dana")
        assert user is not None
        assert (user["role"], user["email"], user["disabled"]) == ("department-head", "dwhitfield@example.gov", True)
        assert not users.verify(user, "first password 1")  # disabled: the right password no longer signs in
    assert run(path, "enable", "dana") == 0
    with database.write() as connection:  # five wrong passwords locked the account
        users.change(connection, "dana", failed_logins=5, locked_until=utcnow().replace(year=2999))
    assert (
        run(path, "reset-password", "dana", "--password-stdin", stdin="second password 2\n", monkeypatch=monkeypatch)
        == 0
    )
    with database.read() as connection:
        user = users.get(connection, "dana")
        assert user is not None and not user["disabled"] and user["locked_until"] is None and user["failed_logins"] == 0
        assert users.verify(user, "second password 2") and not users.verify(user, "first password 1")
        actions = [e["action"] for e in audit.entries(connection, limit=10) if e["target"] == "dana"]
    assert sorted(actions) == sorted(["user.add", "user.set", "user.disable", "user.enable", "user.reset_password"])
    assert run(path, "set", "dana", "--no-email") == 0
    with database.read() as connection:
        assert users.get(connection, "dana")["email"] is None  # type: ignore[index]
    database.dispose()
    capsys.readouterr()


def test_bad_requests_get_a_clear_answer(tmp_path, database_url, monkeypatch, capsys):
    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    assert (
        run(
            path,
            "add",
            "lee",
            "--role",
            "auditor",
            "--password-stdin",
            stdin="a good password\n",
            monkeypatch=monkeypatch,
        )
        == 0
    )
    capsys.readouterr()
    assert run(path, "set", "lee", "--email", "nobody@example.gov") == 2
    assert "nobody@example.gov is not a person in the directory" in capsys.readouterr().err
    assert (
        run(path, "add", "kim", "--role", "department-head", "--email", "kim@elsewhere.example", "--password-stdin")
        == 2
    )
    assert "not a person in the directory" in capsys.readouterr().err
    assert run(path, "disable", "ghost") == 2
    assert "there is no user named 'ghost'" in capsys.readouterr().err
    assert run(path, "set", "lee") == 2
    assert "nothing to change" in capsys.readouterr().err
    assert run(path, "reset-password", "lee", "--password-stdin", stdin="short\n", monkeypatch=monkeypatch) == 2
    assert "at least 12 characters" in capsys.readouterr().err


def test_a_piped_password_without_password_stdin_is_a_message_not_a_traceback(tmp_path, database_url):
    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    script = Path(sys.executable).with_name("aup-milter")
    completed = subprocess.run(
        [str(script), "--config", str(path), "users", "add", "pat", "--role", "auditor"],
        input="a piped password\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert "pipe the password with --password-stdin" in completed.stderr
