"""A list page's rows as a CSV download, every cell through milter.kernel.csvsafe (no spreadsheet formulas)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from archive import audit
from console.access import current_user, runtime_of, source_of
from milter.kernel import csvsafe
from milter.kernel.db import as_utc, utcnow


def wanted(request: Request) -> bool:
    """The list was asked for as CSV (`?format=csv`, the page's own filters kept)."""
    return request.query_params.get("format") == "csv"


def cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, list | tuple):
        return "; ".join(str(item) for item in value)
    return "" if value is None else value


def csv_response(
    name: str, fields: Sequence[str], rows: Iterable[Mapping[str, Any]], request: Request | None = None
) -> Response:
    """`name`-YYYYMMDD-HHMMSS.csv, as an attachment; with `request`, the download is audited (pages that audit
    their views already pass None)."""
    rows = list(rows)
    if request is not None:
        user = current_user(request)
        assert user is not None
        with runtime_of(request).database.write() as connection:
            audit.record(
                connection,
                user["login"],
                "console.download",
                name,
                source=source_of(request),
                details={"path": request.url.path, "query": str(request.url.query), "rows": len(rows)},
            )
    body = csvsafe.table(fields, ({key: cell(row.get(key)) for key in fields} for row in rows))
    filename = f"{name}-{utcnow():%Y%m%d-%H%M%S}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
