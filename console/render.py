"""Server-rendered pages: one Jinja2 environment, what every page's layout needs, flash messages."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from console.security import CSRF_FIELD, csrf_token
from milter.kernel.db import as_utc

PRODUCT = "aup-milter console"
USER_SCOPE_KEY = "console.user"  # set by console.access once the session's user is loaded
FLASH_KEY = "flash"


def flash(request: Request, text: str, level: str = "info") -> None:
    """A message shown once, on the next page this session renders."""
    request.session[FLASH_KEY] = [*request.session.get(FLASH_KEY, []), [level, text]]


def _layout(request: Request) -> dict[str, Any]:
    user = request.scope.get(USER_SCOPE_KEY)
    nav = [item for item in request.app.state.nav if user and user["role"] in item.roles]
    flashes = request.session.pop(FLASH_KEY, [])  # shown once
    return {
        "product": PRODUCT,
        "user": user,
        "nav": nav,
        "flashes": flashes,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "path": request.url.path,
    }


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _details(value: dict[str, Any] | None) -> str:
    """An audit entry's details as "key: value; ..." (empty values left out)."""
    return "; ".join(f"{key}: {item}" for key, item in (value or {}).items() if item not in (None, "", [], {}))


@jinja2.pass_context
def _path_for(context: jinja2.runtime.Context, name: str, /, **params: Any) -> str:
    """A route's path (relative, so links never name a host)."""
    return str(context["request"].app.url_path_for(name, **params))


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,  # every page, every value
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page silently
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["when"] = _when
_environment.filters["details"] = _details
_environment.globals["path_for"] = _path_for
templates = Jinja2Templates(env=_environment, context_processors=[_layout])


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code)
