"""Login lockout counts every guess before the slow password check (issue 14.2)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from console import users
from milter import cli
from tests.test_console import (
    FAILED_TEXT,
    add_user,
    audit_rows,
    client_for,
    csrf_of,
    log_in,
    user_row,
)
from tests.test_console import runtime as runtime  # the fixture

GUESSES = 40


def test_forty_parallel_guesses_check_at_most_the_limit_against_the_hash(runtime):
    add_user(runtime, "admin", "admin")
    clients = [client_for(runtime) for _ in range(GUESSES)]
    tokens = [csrf_of(client.get("/login").text) for client in clients]
    start = threading.Barrier(GUESSES)

    def guess(number: int):  # type: ignore[no-untyped-def]
        start.wait()
        form = {"csrf_token": tokens[number], "login": "admin", "password": f"guess number {number}", "next": "/"}
        return clients[number].post("/login", data=form)

    with ThreadPoolExecutor(GUESSES) as pool:
        responses = list(pool.map(guess, range(GUESSES)))
    assert all(r.status_code == 401 and FAILED_TEXT in r.text for r in responses)
    failures = audit_rows(runtime, "login.failed")
    assert len(failures) == GUESSES  # every guess is audited
    reasons = [entry["details"]["reason"] for entry in failures]
    assert reasons.count("bad-password") == users.MAX_FAILED_LOGINS  # only these met the real hash
    assert reasons.count("locked") == GUESSES - users.MAX_FAILED_LOGINS
    assert sum(entry["details"]["locked"] for entry in failures) == 1  # one guess locked it
    assert users.is_locked(user_row(runtime, "admin"))


def test_an_admin_unlocks_a_locked_account_on_the_command_line(runtime, capsys):
    add_user(runtime, "admin", "admin")
    client = client_for(runtime)
    for _ in range(users.MAX_FAILED_LOGINS):
        assert log_in(client, "admin", "an outsider's guess").status_code == 401
    assert log_in(client, "admin").status_code == 401  # locked, even with the right password
    config = str(runtime.config.path)
    assert cli.main(["--config", config, "users", "unlock", "admin"]) == 0
    assert "admin unlocked" in capsys.readouterr().out
    assert audit_rows(runtime, "user.unlock")[-1]["target"] == "admin"
    assert log_in(client, "admin").status_code == 303
    assert cli.main(["--config", config, "users", "unlock", "nobody"]) == 2
    assert "there is no user named 'nobody'" in capsys.readouterr().err
