"""Two ASGI middlewares every console response passes: security headers and CSRF.

The CSRF check runs before routing, so no page can forget it: every request
with an unsafe method must carry the session's token in the `csrf_token` form
field (or the X-CSRF-Token header), or it gets 403 and its handler never runs.
The parsed form is kept on the scope, so handlers can be plain synchronous
functions (Starlette runs those in a thread, off the gateway's event loop).
"""

from __future__ import annotations

import hmac
import logging
import secrets

from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_SESSION_KEY = "csrf"
FORM_SCOPE_KEY = "console.form"
MAX_BODY = 10 * 1024 * 1024

# No scripts at all, styles and images only from the console itself, never framed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds HEADERS to every response; pages (not static files) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if not static and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csrf_token(connection: HTTPConnection) -> str:
    """This session's token, made on first use."""
    session = connection.session
    if CSRF_SESSION_KEY not in session:
        session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return str(session[CSRF_SESSION_KEY])


def new_csrf_token(connection: HTTPConnection) -> str:
    connection.session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return str(connection.session[CSRF_SESSION_KEY])


def form_of(request: Request) -> FormData:
    """The form the CSRF check already parsed (empty for safe methods)."""
    return request.scope.get(FORM_SCOPE_KEY) or FormData()


def _refuse(status: int, text: str) -> HTMLResponse:
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status}</title></head>'
        f'<body><main><h1>{status}</h1><p>{text}</p><p><a href="/">Back to the console</a></p></main></body></html>'
    )
    return HTMLResponse(page, status_code=status)


class CsrfProtect:
    """Refuses unsafe requests without the session's CSRF token. Runs inside SessionMiddleware."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            await _refuse(413, "The form is too large.")(scope, receive, send)
            return
        request = Request(scope, _replay(body, receive))
        try:
            form = await request.form()
        except Exception:  # malformed multipart or urlencoded bodies
            await _refuse(400, "The form could not be read.")(scope, receive, send)
            return
        expected = request.session.get(CSRF_SESSION_KEY)
        supplied = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not (
            isinstance(expected, str)
            and isinstance(supplied, str)
            and hmac.compare_digest(expected.encode(), supplied.encode())
        ):
            log.warning(
                "CSRF token %s on %s %s from %s",
                "missing" if not supplied else "wrong",
                scope["method"],
                scope["path"],
                request.client.host if request.client else "?",
            )
            await form.close()
            await _refuse(
                403, "This form has expired or did not come from this console. Go back, reload the page and try again."
            )(scope, receive, send)
            return
        scope[FORM_SCOPE_KEY] = form
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            await form.close()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, then: Receive) -> Receive:
    """Hands out the buffered body once, then whatever the connection sends (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
