"""Who may see what, and the audit entry every action leaves.

Every route's endpoint carries one of these decorators, and `check_routes`
refuses to build the app otherwise:
- `@public` - anyone (login form, health);
- `@requires(*roles)` - a page for signed-in users with one of `roles`;
- `@action(name, *roles)` - an unsafe request (POST) by those roles, always audited;
- `@public_action` - an unsafe request that writes its own audit entries (only login).
Handlers are plain functions: Starlette runs them in a thread, off the event loop.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from archive import audit
from console import users
from console.render import USER_SCOPE_KEY, render
from console.security import SAFE_METHODS

if TYPE_CHECKING:
    from milter.runtime import Runtime

Page = Callable[[Request], Response]
SESSION_USER, SESSION_LOGIN_AT, SESSION_STAMP = "user", "login_at", "stamp"


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def source_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def current_user(request: Request) -> dict[str, Any] | None:
    """The signed-in user, read fresh from the database on every request; None once the session has ended
    (logout anywhere, a new password, a new role, or a disabled account: see console.users)."""
    if USER_SCOPE_KEY in request.scope:
        return request.scope[USER_SCOPE_KEY]  # type: ignore[no-any-return]
    session = request.session
    login, login_at, stamp = session.get(SESSION_USER), session.get(SESSION_LOGIN_AT), session.get(SESSION_STAMP)
    user = None
    lifetime = request.app.state.session_lifetime
    if (
        isinstance(login, str)
        and isinstance(stamp, str)
        and isinstance(login_at, int | float)
        and time.time() - login_at < lifetime
    ):
        with runtime_of(request).database.read() as connection:
            user = users.get(connection, login)
            version = users.session_version(connection, login)
        if user is not None and (
            user["disabled"] or not hmac.compare_digest(stamp, users.session_stamp(user, version))
        ):
            user = None
    if user is not None:
        user = {key: value for key, value in user.items() if key != "password_hash"}
    request.scope[USER_SCOPE_KEY] = user
    return user


def forbidden(request: Request) -> Response:
    return render(
        request,
        "error.html",
        {"status": 403, "title": "Not allowed", "text": "Your role does not give you access to this page."},
        status_code=403,
    )


def _to_login(request: Request) -> Response:
    target = "/login"
    if request.method in SAFE_METHODS:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?next=" + quote(here, safe="/")
    return RedirectResponse(target, status_code=303)


def requires(*roles: str) -> Callable[[Page], Page]:
    """Only signed-in users with one of `roles`; others are sent to log in, or get 403."""
    unknown = set(roles) - set(users.ROLES)
    if unknown or not roles:
        raise ValueError(f"requires() needs roles from {users.ROLES}, got {roles}")

    def decorate(page: Page) -> Page:
        @functools.wraps(page)
        def guarded(request: Request) -> Response:
            user = current_user(request)
            if user is None:
                return _to_login(request)
            if user["role"] not in roles:
                return forbidden(request)
            return page(request)

        guarded.roles = frozenset(roles)  # type: ignore[attr-defined]
        return guarded

    return decorate


@dataclass
class Act:
    """One audited action by the signed-in user.

    Do the action's writes inside `with act.transaction() as connection:` and
    the audit entry commits with them, or neither does. An action without
    writes gets its entry after the handler returns. Set `target` and
    `details` to say what was acted on.
    """

    request: Request
    action: str
    user: dict[str, Any]
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with runtime_of(self.request).database.write() as connection:
            yield connection
            self.record(connection)

    def record(self, connection: Connection) -> None:
        if self.recorded:  # one entry per request
            return
        audit.record(
            connection,
            self.user["login"],
            self.action,
            self.target,
            source=source_of(self.request),
            details={"path": self.request.url.path, **self.details},
        )
        self.recorded = True


def action(name: str, *roles: str) -> Callable[[Callable[[Request, Act], Response]], Page]:
    """An unsafe request by `roles`, audited as `name` (CSRF is already checked by the middleware)."""

    def decorate(handler: Callable[[Request, Act], Response]) -> Page:
        @requires(*roles)
        @functools.wraps(handler)
        def audited(request: Request) -> Response:
            user = current_user(request)
            assert user is not None  # requires() let us in
            act = Act(request, name, user)
            response = handler(request, act)
            if not act.recorded:
                act.details.setdefault("status", response.status_code)
                with runtime_of(request).database.write() as connection:
                    act.record(connection)
            return response

        audited.audited = True  # type: ignore[attr-defined]
        return audited

    return decorate


def public(page: Page) -> Page:
    page.public = True  # type: ignore[attr-defined]
    return page


def public_action(page: Page) -> Page:
    """An unsafe request anyone may make, whose handler writes its own audit entries (login)."""
    page.public = True  # type: ignore[attr-defined]
    page.audited = True  # type: ignore[attr-defined]
    return page


def check_routes(routes: list[BaseRoute]) -> None:
    """Refuse to start a console with a page that forgot its permission or its audit entry."""
    for route in routes:
        if not isinstance(route, Route):
            continue
        endpoint = route.endpoint
        if not (getattr(endpoint, "roles", None) or getattr(endpoint, "public", False)):
            raise RuntimeError(f"console route {route.path}: its endpoint needs @requires(...) or @public")
        methods = route.methods or set()
        unsafe = methods - SAFE_METHODS
        if unsafe and not getattr(endpoint, "audited", False):
            raise RuntimeError(
                f"console route {route.path} ({', '.join(sorted(unsafe))}): use @action(...) so it is audited"
            )
        if getattr(endpoint, "audited", False) and methods & SAFE_METHODS:
            raise RuntimeError(
                f"console route {route.path}: an action answers POST only; give its page a separate GET route"
            )
