"""The console base, through Starlette's TestClient against the real app on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import itsdangerous
import pytest
from sqlalchemy import select, text, update
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from archive import audit, records
from console import users
from console.access import Act, action, check_routes, public, requires
from console.app import SESSION_COOKIE, create_app
from milter.config import load_config
from milter.delivery import queue
from milter.kernel.db import utcnow
from milter.runtime import Runtime
from quarantine import holds
from tests.conftest import write_config

PASSWORD = "correct horse battery staple"
PAGES = {
    "/": set(users.ROLES),
    "/audit": {"admin", "auditor"},
    "/users": {"admin"},
    "/approvals": {"admin", "department-head"},
    "/quarantine": {"admin", "it-staff"},
    "/records": {"admin", "records-officer"},
    "/foia": {"admin", "records-officer"},
    "/records/report": {"admin", "records-officer"},
}
FAILED_TEXT = "The login or password is not right"


def make_runtime(folder: Path, database_url: str, console: dict[str, Any] | None = None) -> Runtime:
    path = write_config(folder, database_url, f"maildir:{folder / 'outbox'}", {"console": console or {}})
    runtime = Runtime(load_config(path))
    runtime.database.create_schema()
    return runtime


@pytest.fixture
def runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    running = make_runtime(tmp_path / "gw", database_url)
    yield running
    running.close()


def client_for(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), client=("127.0.0.1", 50000), follow_redirects=False)


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return client_for(runtime)


def add_user(runtime: Runtime, login: str, role: str) -> None:
    with runtime.database.write() as connection:
        users.add(connection, login, PASSWORD, role)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, login: str, password: str = PASSWORD, next_path: str = "/") -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf_token": token, "login": login, "password": password, "next": next_path})


def logged_in(runtime: Runtime, role: str, login: str | None = None) -> TestClient:
    login = login or role.replace("-", "")
    add_user(runtime, login, role)
    client = client_for(runtime)
    assert log_in(client, login).status_code == 303
    return client


def audit_rows(runtime: Runtime, action_name: str | None = None) -> list[dict[str, Any]]:
    with runtime.database.read() as connection:
        return audit.entries(connection, limit=1000, action=action_name)[::-1]


def user_row(runtime: Runtime, login: str) -> dict[str, Any]:
    with runtime.database.read() as connection:
        found = users.get(connection, login)
    assert found is not None
    return found


def page_token(client: TestClient, path: str = "/") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return csrf_of(response.text)


def listed_ids(html: str) -> list[int]:
    body = html.split('<table class="log stack">', 1)[1].split("</table>", 1)[0]
    return [int(number) for number in re.findall(r'<td class="num"[^>]*>(\d+)</td>', body)]


# -- login, lockout, sessions --------------------------------------------


def test_login_with_the_right_password_opens_the_console_and_is_audited(runtime, client):
    add_user(runtime, "ann", "admin")
    response = log_in(client, "ann")
    assert response.status_code == 303 and response.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Signed in as <strong>ann</strong>" in home.text and '<span class="role">admin</span>' in home.text
    [entry] = audit_rows(runtime, "login")
    assert (entry["actor"], entry["target"], entry["source"], entry["details"]) == (
        "ann",
        "ann",
        "127.0.0.1",
        {"role": "admin"},
    )


def test_wrong_password_and_unknown_login_get_the_same_answer_and_are_audited(runtime, client):
    add_user(runtime, "ann", "admin")
    wrong = log_in(client, "ann", "not the password at all")
    unknown = log_in(client, "nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    message = re.compile(r'<p class="flash error" role="alert">(.*?)</p>')
    assert message.search(wrong.text).group(1) == message.search(unknown.text).group(1)
    assert FAILED_TEXT in wrong.text
    assert client.get("/").status_code == 303  # still not signed in
    failures = audit_rows(runtime, "login.failed")
    assert [(e["actor"], e["target"], e["details"]["reason"]) for e in failures] == [
        ("anonymous", "ann", "bad-password"),
        ("anonymous", "nobody", "unknown-user"),
    ]
    assert user_row(runtime, "ann")["failed_logins"] == 1
    assert audit_rows(runtime, "login") == []


def test_repeated_failures_lock_the_account_even_against_the_right_password(runtime, client):
    add_user(runtime, "ann", "admin")
    for _ in range(users.MAX_FAILED_LOGINS):
        assert log_in(client, "ann", "wrong password, again").status_code == 401
    row = user_row(runtime, "ann")
    assert users.is_locked(row)
    assert audit_rows(runtime, "login.failed")[-1]["details"] == {"reason": "bad-password", "locked": True}
    refused = log_in(client, "ann")  # the right password, during the lockout
    assert refused.status_code == 401 and FAILED_TEXT in refused.text
    assert audit_rows(runtime, "login.failed")[-1]["details"]["reason"] == "locked"
    # When the lockout has run out, the right password works and the count starts again.
    with runtime.database.write() as connection:
        connection.execute(
            update(users.console_user)
            .where(users.console_user.c.login == "ann")
            .values(locked_until=utcnow() - timedelta(seconds=1), failed_logins=3)
        )
    assert log_in(client, "ann").status_code == 303
    row = user_row(runtime, "ann")
    assert (row["failed_logins"], row["locked_until"]) == (0, None)


def test_a_disabled_user_is_signed_out_at_once_and_cannot_log_in(runtime):
    client = logged_in(runtime, "admin", "ann")
    with runtime.database.write() as connection:
        connection.execute(update(users.console_user).where(users.console_user.c.login == "ann").values(disabled=True))
    assert client.get("/").status_code == 303
    assert log_in(client, "ann").status_code == 401


def session_data(client: TestClient) -> dict[str, Any]:
    """What the signed session cookie holds (signed, not encrypted: readable, not forgeable)."""
    payload = client.cookies[SESSION_COOKIE].split(".", 1)[0]
    return json.loads(base64.b64decode(payload))


def plant_session(client: TestClient, key: str, data: dict[str, Any]) -> None:
    [cookie] = [c for c in client.cookies.jar if c.name == SESSION_COOKIE]
    value = itsdangerous.TimestampSigner(key).sign(base64.b64encode(json.dumps(data).encode())).decode()
    client.cookies.set(SESSION_COOKIE, value, domain=cookie.domain, path=cookie.path)


def test_login_starts_a_new_session_so_a_planted_cookie_stays_anonymous(runtime, client):
    add_user(runtime, "ann", "admin")
    client.get("/login")
    planted_cookie = client.cookies[SESSION_COOKIE]
    # Whatever the session held before login (here: a value signed with the real key) must not survive it.
    key = runtime.config.settings.console.secret_key_file.read_text().strip()
    planted = {**session_data(client), "planted": "by someone else"}
    plant_session(client, key, planted)
    assert csrf_of(client.get("/login").text) == planted["csrf"]
    assert log_in(client, "ann").status_code == 303
    after = session_data(client)
    assert set(after) == {"csrf", "user", "login_at", "stamp"} and after["user"] == "ann"
    assert after["csrf"] != planted["csrf"]
    assert page_token(client) == after["csrf"]
    attacker = client_for(runtime)
    attacker.cookies.set(SESSION_COOKIE, planted_cookie)
    assert attacker.get("/").status_code == 303


def test_logout_ends_the_session_and_is_audited(runtime):
    client = logged_in(runtime, "auditor", "carl")
    response = client.post("/logout", data={"csrf_token": page_token(client)})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "You are logged out." in client.get("/login").text
    assert client.get("/").status_code == 303
    [entry] = audit_rows(runtime, "logout")
    assert (entry["actor"], entry["target"], entry["details"]["path"]) == ("carl", "carl", "/logout")


def test_a_session_older_than_its_lifetime_is_not_accepted(tmp_path, database_url):
    runtime = make_runtime(tmp_path / "gw", database_url, {"session_lifetime": "1h"})
    try:
        client = logged_in(runtime, "admin", "ann")
        assert client.get("/").status_code == 200
        app = client.app
        app.state.session_lifetime = 0.0  # as if the hour had passed; the cookie itself is unchanged
        assert client.get("/").status_code == 303
    finally:
        runtime.close()


# -- CSRF ----------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", "other-session"])
def test_a_post_without_the_session_token_is_refused_and_nothing_happens(runtime, token):
    client = logged_in(runtime, "auditor", "carl")
    data: dict[str, str] = {}
    if token == "wrong":
        data["csrf_token"] = "x" * 43
    elif token == "other-session":
        data["csrf_token"] = page_token(logged_in(runtime, "auditor", "dora"))
    entries_before = len(audit_rows(runtime))
    assert client.post("/logout", data=data).status_code == 403
    assert client.post("/audit/verify", data=data).status_code == 403
    assert client.get("/").status_code == 200  # the logout did not happen
    assert audit_rows(runtime, "logout") == [] and audit_rows(runtime, "audit.verify") == []
    assert len(audit_rows(runtime)) == entries_before


def test_a_login_post_without_the_token_is_refused_before_the_password_is_checked(runtime, client):
    add_user(runtime, "ann", "admin")
    client.get("/login")
    response = client.post("/login", data={"login": "ann", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/").status_code == 303
    assert audit_rows(runtime) == []
    assert user_row(runtime, "ann")["failed_logins"] == 0


def test_the_token_is_also_accepted_in_a_header(runtime):
    client = logged_in(runtime, "auditor", "carl")
    response = client.post("/audit/verify", headers={"X-CSRF-Token": page_token(client)})
    assert response.status_code == 303
    assert len(audit_rows(runtime, "audit.verify")) == 1


# -- roles and redirects -------------------------------------------------


@pytest.mark.parametrize("role", users.ROLES)
def test_each_page_is_open_to_its_roles_only(runtime, role):
    client = logged_in(runtime, role)
    for path, allowed in PAGES.items():
        response = client.get(path)
        if role in allowed:
            assert response.status_code == 200, (role, path)
        else:
            assert response.status_code == 403, (role, path)
            assert "Your role does not give you access to this page." in response.text
    shown = set(re.findall(r'<nav aria-label="Main">.*?</nav>', client.get("/").text, re.DOTALL)[0].split('href="')[1:])
    shown_paths = {item.split('"', 1)[0] for item in shown}
    assert shown_paths == {path for path, allowed in PAGES.items() if role in allowed}
    verify = client.post("/audit/verify", data={"csrf_token": page_token(client)})
    assert verify.status_code == (303 if role in PAGES["/audit"] else 403)


@pytest.mark.parametrize("path", [*PAGES, "/audit?actor=ann&action=login"])
def test_an_anonymous_visitor_is_sent_to_log_in_and_back(runtime, client, path):
    add_user(runtime, "ann", "admin")
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    login_page = client.get(response.headers["location"])
    next_path = re.search(r'name="next" value="([^"]*)"', login_page.text).group(1).replace("&amp;", "&")
    assert next_path == path
    assert log_in(client, "ann", next_path=next_path).headers["location"] == path


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "/\t/evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/\r\n//evil.example",
        "",
    ],
)
def test_next_never_leads_off_the_console(runtime, client, target):
    add_user(runtime, "ann", "admin")
    login_page = client.get("/login", params={"next": target})
    assert 'name="next" value="/"' in login_page.text
    assert log_in(client, "ann", next_path=target).headers["location"] == "/"


def test_an_unknown_page_gets_a_404_page_and_a_wrong_method_a_405(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Not found" in response.text
    wrong_method = client.get("/logout")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_an_action_and_its_audit_entry_commit_together_or_not_at_all(runtime):
    add_user(runtime, "ann", "admin")
    app = create_app(runtime)
    request = Request(
        {
            "type": "http",
            "app": app,
            "method": "POST",
            "scheme": "http",
            "server": ("testserver", 80),
            "path": "/users/ann/unlock",
            "query_string": b"",
            "headers": [],
            "client": ("127.0.0.1", 1),
        }
    )
    act = Act(request, "user.note-failure", user_row(runtime, "ann"), target="ann")
    with pytest.raises(RuntimeError), act.transaction() as connection:
        users.count_attempt(connection, "ann")
        raise RuntimeError("the action fails half way")
    assert user_row(runtime, "ann")["failed_logins"] == 0 and audit_rows(runtime) == [] and not act.recorded
    with act.transaction() as connection:
        users.count_attempt(connection, "ann")
    assert user_row(runtime, "ann")["failed_logins"] == 1
    [entry] = audit_rows(runtime)
    assert (entry["actor"], entry["action"], entry["target"], entry["details"]) == (
        "ann",
        "user.note-failure",
        "ann",
        {"path": "/users/ann/unlock"},
    )


def test_a_page_without_a_permission_or_an_unaudited_post_stops_the_console_from_starting():
    def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x")

    with pytest.raises(RuntimeError, match="needs @requires"):
        check_routes([Route("/open", page)])
    with pytest.raises(RuntimeError, match="use @action"):
        check_routes([Route("/change", requires("admin")(page), methods=["POST"])])
    with pytest.raises(RuntimeError, match="POST only"):
        check_routes(
            [Route("/both", action("x.do", "admin")(lambda request, act: page(request)), methods=["GET", "POST"])]
        )
    with pytest.raises(ValueError, match="needs roles"):
        requires("superuser")
    check_routes(
        [Route("/ok", public(page)), Route("/do", action("x.do", "admin")(lambda r, a: page(r)), methods=["POST"])]
    )


# -- headers, cookie, secret ---------------------------------------------


def test_every_response_carries_the_security_headers(runtime):
    client = logged_in(runtime, "admin", "ann")
    anonymous = client_for(runtime)
    responses = [
        client.get("/"),
        client.get("/audit"),
        client.get("/users"),
        client.get("/static/console.css"),
        client.get("/missing"),
        anonymous.get("/"),
        anonymous.get("/login"),
        anonymous.get("/healthz"),
        anonymous.get("/metrics"),
        anonymous.post("/logout"),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp, response.url
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/").headers["cache-control"] == "no-store"
    page = client.get("/audit").text
    assert not re.search(r'(src|href)="(https?:)?//', page), "the console loads nothing from elsewhere"
    assert "<script" not in page


def test_the_session_cookie_is_signed_httponly_lax_and_secure_behind_https(tmp_path, database_url):
    runtime = make_runtime(
        tmp_path / "gw", database_url, {"base_url": "https://console.example.gov", "session_lifetime": "2h"}
    )
    try:
        client = client_for(runtime)
        cookie = client.get("/login").headers["set-cookie"].lower()
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie and "max-age=7200" in cookie
    finally:
        runtime.close()
    plain = make_runtime(tmp_path / "plain", database_url)
    try:
        assert "secure" not in client_for(plain).get("/login").headers["set-cookie"].lower()
    finally:
        plain.close()


def test_the_secret_key_is_made_once_with_mode_0600_and_reused(runtime):
    add_user(runtime, "ann", "admin")
    key_file = runtime.config.settings.console.secret_key_file
    assert not key_file.exists()
    first = client_for(runtime)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = key_file.read_text()
    assert log_in(first, "ann").status_code == 303
    second = client_for(runtime)  # a restart: the same key, so the session is still good
    assert key_file.read_text() == key
    second.cookies.set(SESSION_COOKIE, first.cookies[SESSION_COOKIE])
    assert second.get("/").status_code == 200
    forged = first.cookies[SESSION_COOKIE].rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA"
    third = client_for(runtime)
    third.cookies.set(SESSION_COOKIE, forged)
    assert third.get("/").status_code == 303


def test_metrics_are_only_for_metrics_networks_and_health_is_open(runtime):
    inside = client_for(runtime)
    assert inside.get("/healthz").json()["status"] == "ok"
    metrics = inside.get("/metrics")
    assert metrics.status_code == 200 and "aup_queue" in metrics.text
    outside = TestClient(create_app(runtime), client=("192.0.2.7", 50000))
    assert outside.get("/metrics").status_code == 403
    assert outside.get("/healthz").status_code == 200


# -- audit ---------------------------------------------------------------


def test_every_console_action_is_in_the_audit_log(runtime, client):
    add_user(runtime, "carl", "auditor")
    assert log_in(client, "carl", "a wrong password!").status_code == 401
    assert log_in(client, "carl").status_code == 303
    assert client.post("/audit/verify", data={"csrf_token": page_token(client)}).status_code == 303
    assert client.post("/logout", data={"csrf_token": page_token(client)}).status_code == 303
    trail = [(e["actor"], e["action"]) for e in audit_rows(runtime)]
    assert trail == [("anonymous", "login.failed"), ("carl", "login"), ("carl", "audit.verify"), ("carl", "logout")]
    assert all(e["source"] == "127.0.0.1" for e in audit_rows(runtime))


def test_the_audit_page_is_paged_newest_first_and_filters_by_actor_and_action(runtime):
    client = logged_in(runtime, "auditor", "carl")  # entry 1: carl's login
    with runtime.database.write() as connection:
        for number in range(12):  # entries 2..13
            audit.record(
                connection,
                "alice" if number % 2 else "bob",
                "queue.retry" if number % 3 else "approval.approve",
                f"m{number}",
                source="cli",
            )
    first = client.get("/audit", params={"per_page": 5})  # its own view is entry 14
    assert listed_ids(first.text) == [14, 13, 12, 11, 10]
    older = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    second = client.get(older)
    assert listed_ids(second.text) == [9, 8, 7, 6, 5]
    newer = re.search(r'href="([^"]+)" rel="prev"', second.text).group(1).replace("&amp;", "&")
    assert listed_ids(client.get(newer).text) == [14, 13, 12, 11, 10]
    by_alice = client.get("/audit", params={"actor": "alice"})
    assert listed_ids(by_alice.text) == [13, 11, 9, 7, 5, 3]
    retries_by_bob = client.get("/audit", params={"actor": "bob", "action": "approval.approve"})
    assert listed_ids(retries_by_bob.text) == [8, 2]
    views = audit_rows(runtime, "audit.view")
    assert len(views) == 5 and {v["actor"] for v in views} == {"carl"}
    assert views[-1]["details"]["actor"] == "bob" and views[-1]["details"]["action"] == "approval.approve"


def test_audit_values_are_escaped_on_the_page(runtime, client):
    add_user(runtime, "carl", "auditor")
    log_in(client, "<script>alert(1)</script>", "whatever it is")
    assert log_in(client, "carl").status_code == 303
    page = client.get("/audit").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def _drop_immutability(runtime: Runtime) -> None:
    with runtime.database.write() as connection:
        if runtime.database.is_sqlite:
            connection.execute(text("DROP TRIGGER audit_log_no_update"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_immutable ON audit_log"))


def test_verify_says_the_chain_is_intact_then_names_the_first_tampered_entry(runtime):
    client = logged_in(runtime, "auditor", "carl")
    with runtime.database.write() as connection:
        for number in range(3):
            audit.record(connection, "alice", "queue.retry", f"m{number}", source="cli")
    intact = client.post("/audit/verify", data={"csrf_token": page_token(client, "/audit")})
    assert intact.headers["location"] == "/audit"
    assert "The audit chain is intact: all 5 entries check out." in client.get("/audit").text
    # An attacker with database access edits entry 3 to hide what alice did.
    _drop_immutability(runtime)
    with runtime.database.write() as connection:
        connection.execute(update(audit.audit_log).where(audit.audit_log.c.id == 3).values(actor="bob"))
    broken = client.post("/audit/verify", data={"csrf_token": page_token(client, "/audit")})
    page = client.get(broken.headers["location"]).text
    assert "The audit chain is broken at entry 3" in page and "its contents were altered" in page
    assert listed_ids(page)[0] == 3
    results = [e["details"] for e in audit_rows(runtime, "audit.verify")]
    assert results[0]["intact"] is True
    assert results[1]["intact"] is False and results[1]["first_broken"] == 3


# -- home and users ------------------------------------------------------


def test_the_admin_home_counts_todays_decisions_the_queue_and_held_messages(runtime):
    blob = "ab" * 32
    with runtime.database.write() as connection:
        for number, decision in enumerate(["deliver", "deliver", "hold", "reject"]):
            records.append(
                connection, message_id=f"m{number}", kind="received", blob_sha256=blob, size=10, action=decision
            )
        records.append(
            connection,
            message_id="old",
            kind="received",
            blob_sha256=blob,
            size=10,
            action="deliver",
            recorded_at=utcnow() - timedelta(days=2),
        )
        records.append(connection, message_id="m0", kind="delivered", blob_sha256=blob, size=10, action="deliver")
        queue.enqueue(
            connection,
            message_id="m0",
            blob_sha256=blob,
            mail_from="a@example.gov",
            rcpts=["b@example.gov", "c@example.gov"],
            origin="relay",
        )
        for queue_name in ("approval", "approval", "quarantine"):
            holds.hold(
                connection,
                message_id="m2",
                queue_name=queue_name,
                blob_sha256=blob,
                prepend=b"",
                mail_from="a@example.gov",
                rcpts=["all@example.gov"],
                subject="s",
                reason="r",
                findings=[],
            )
    page = logged_in(runtime, "admin", "ann").get("/").text

    def cell(label: str) -> str:
        return re.search(rf'<th scope="row">{label}</th><td class="num">([^<]*)</td>', page).group(1)

    assert (cell("deliver"), cell("hold"), cell("reject")) == ("2", "1", "1")
    assert re.search(r'<p class="big">2</p>\s*<p>recipients waiting', page)
    assert (cell("approval"), cell("quarantine")) == ("2", "1")
    other = logged_in(runtime, "records-officer", "rita").get("/").text
    assert "Messages today" not in other and "Your pages" in other


def test_the_users_page_lists_accounts_without_their_hashes(runtime):
    add_user(runtime, "rita", "records-officer")
    with runtime.database.write() as connection:
        connection.execute(
            update(users.console_user)
            .where(users.console_user.c.login == "rita")
            .values(locked_until=utcnow() + timedelta(minutes=5))
        )
    page = logged_in(runtime, "admin", "ann").get("/users").text
    rows = re.findall(r'<th scope="row">([^<]+)</th>\s*<td[^>]*>([^<]+)</td>', page)
    assert rows == [("ann", "admin"), ("rita", "records-officer")]
    assert "locked until" in page
    assert "$argon2" not in page
    with runtime.database.read() as connection:
        assert connection.execute(select(users.console_user.c.password_hash)).scalars().first().startswith("$argon2")
