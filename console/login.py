"""Log in and out.

One message for every failed login, whatever the reason, so the form never
tells whether a login exists. Every guess is counted before the slow password
check, and repeated ones lock the account for a while (console.users.count_attempt).
A successful login starts a new session: the old cookie's contents, CSRF token
included, are thrown away. Logging out ends every session of the user, on the
server: a copy of the cookie opens nothing afterwards.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from archive import audit
from console import users
from console.access import (
    SESSION_LOGIN_AT,
    SESSION_STAMP,
    SESSION_USER,
    Act,
    action,
    current_user,
    public,
    public_action,
    runtime_of,
    source_of,
)
from console.render import flash, render
from console.security import form_of, new_csrf_token

FAILED = (
    "The login or password is not right, or the account is locked after too many failed tries. "
    "Try again later, or ask an administrator."
)
MAX_PASSWORD = 1024  # argon2 accepts any length; a bound keeps a login cheap


def safe_next(value: object) -> str:
    """A local path to go to after login; anything that could leave the console becomes "/"."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    # Browsers read "\" as "/" and drop tabs and newlines: "/\evil" and "/\t/evil" lead off-site.
    if "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "/"
    return value  # starts with one "/": a path on this host, with no scheme and no host of its own


@public
def login_form(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if current_user(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    return render(request, "login.html", {"next": next_path, "login": "", "error": None})


@public_action
def login(request: Request) -> Response:
    form = form_of(request)
    name = str(form.get("login", "")).strip()[:200]
    password = str(form.get("password", ""))
    next_path = safe_next(form.get("next"))
    database = runtime_of(request).database
    counted = users.Counted(may_check=False, locked_now=False)
    if len(password) <= MAX_PASSWORD:
        with database.write() as connection:  # counted first: parallel guesses cannot pass the limit
            counted = users.count_attempt(connection, name)
        with database.read() as connection:  # argon2 is slow: never inside the write lock
            attempt = users.check_login(connection, name, password, counted)
    else:
        attempt = users.Attempt(None, False, "password-too-long")
    stamp = ""
    with database.write() as connection:
        if attempt.ok:
            users.record_success(connection, name)
            assert attempt.user is not None
            # the user as the password was checked: if the password or role changed since, this session is void
            stamp = users.session_stamp(attempt.user, users.session_version(connection, name))
            audit.record(
                connection,
                name,
                "login",
                name,
                source=source_of(request),
                details={"role": attempt.user["role"] if attempt.user else None},
            )
        else:
            locked = attempt.reason == "bad-password" and counted.locked_now
            audit.record(
                connection,
                "anonymous",
                "login.failed",
                name,
                source=source_of(request),
                details={"reason": attempt.reason, "locked": locked},
            )
    if not attempt.ok:
        return render(request, "login.html", {"next": next_path, "login": name, "error": FAILED}, status_code=401)
    request.session.clear()  # a new session: nothing planted before login survives it
    new_csrf_token(request)
    request.session[SESSION_USER] = name
    request.session[SESSION_LOGIN_AT] = int(time.time())
    request.session[SESSION_STAMP] = stamp
    return RedirectResponse(next_path, status_code=303)


@action("logout", *users.ROLES)
def logout(request: Request, act: Act) -> Response:
    act.target = act.user["login"]
    with act.transaction() as connection:
        users.end_sessions(connection, act.user["login"])  # this cookie, and any copy of it, stops working
    request.session.clear()
    flash(request, "You are logged out.", "ok")
    return RedirectResponse(request.url_for("login_form").path, status_code=303)
