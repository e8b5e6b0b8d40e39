"""Console sessions end on the server (issue 14.1): a copied cookie opens nothing after logout,
a password change, a role change or a disabled account, on any browser the user had."""

from __future__ import annotations

from sqlalchemy import update

from archive import audit
from console import users
from console.app import SESSION_COOKIE
from milter import cli
from tests.test_console import PASSWORD, add_user, client_for, log_in, logged_in, page_token
from tests.test_console import runtime as runtime  # the fixture


def replay(runtime, cookie: str):  # type: ignore[no-untyped-def]
    """A second browser (an attacker's) sending a copied cookie."""
    thief = client_for(runtime)
    thief.cookies.set(SESSION_COOKIE, cookie)
    return thief.get("/users")


def test_a_copied_cookie_opens_nothing_after_logout(runtime):
    admin = logged_in(runtime, "admin")
    copied = admin.cookies[SESSION_COOKIE]
    assert replay(runtime, copied).status_code == 200  # the copy works while the session lasts
    assert admin.post("/logout", data={"csrf_token": page_token(admin)}).status_code == 303
    response = replay(runtime, copied)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert log_in(admin, "admin").status_code == 303  # logging in again starts a good new session
    assert admin.get("/users").status_code == 200
    assert replay(runtime, copied).status_code == 303


def test_logout_ends_the_users_sessions_on_every_browser(runtime):
    office = logged_in(runtime, "admin")
    laptop = client_for(runtime)
    assert log_in(laptop, "admin").status_code == 303
    assert office.post("/logout", data={"csrf_token": page_token(office)}).status_code == 303
    assert laptop.get("/users").status_code == 303
    other = logged_in(runtime, "auditor")  # another user's session is not touched
    assert other.get("/audit").status_code == 200


def test_a_new_password_ends_every_session(runtime):
    admin = logged_in(runtime, "admin")
    with runtime.database.write() as connection:
        users.set_password(connection, "admin", "a brand new passphrase")
    assert admin.get("/users").status_code == 303
    assert log_in(admin, "admin").status_code == 401
    assert log_in(admin, "admin", "a brand new passphrase").status_code == 303


def test_a_role_change_ends_every_session(runtime):
    add_user(runtime, "rita", "records-officer")
    rita = client_for(runtime)
    assert log_in(rita, "rita").status_code == 303
    with runtime.database.write() as connection:
        connection.execute(update(users.console_user).where(users.console_user.c.login == "rita").values(role="admin"))
    assert rita.get("/").status_code == 303  # she logs in again to use the new role
    assert log_in(rita, "rita").status_code == 303 and rita.get("/users").status_code == 200


def test_a_disabled_then_enabled_account_does_not_revive_old_sessions(runtime):
    admin = logged_in(runtime, "admin")
    with runtime.database.write() as connection:
        users.change(connection, "admin", disabled=True)
    assert admin.get("/users").status_code == 303
    assert log_in(admin, "admin", PASSWORD).status_code == 401
    with runtime.database.write() as connection:
        users.change(connection, "admin", disabled=False)
    assert admin.get("/users").status_code == 303
    assert log_in(admin, "admin", PASSWORD).status_code == 303


def test_users_disable_on_the_command_line_ends_the_session_and_is_audited(runtime, capsys):
    admin = logged_in(runtime, "admin")
    config = str(runtime.config.path)
    assert cli.main(["--config", config, "users", "disable", "admin"]) == 0
    assert "admin: disabled=True" in capsys.readouterr().out
    assert admin.get("/users").status_code == 303
    assert cli.main(["--config", config, "users", "enable", "admin"]) == 0
    assert admin.get("/users").status_code == 303  # enabling revives no old session
    assert log_in(admin, "admin").status_code == 303
    with runtime.database.read() as connection:
        actions = [e["action"] for e in audit.entries(connection, limit=3)]
    assert actions == ["login", "user.enable", "user.disable"]
    assert cli.main(["--config", config, "users", "disable", "nobody"]) == 2
    assert "there is no user named 'nobody'" in capsys.readouterr().err
