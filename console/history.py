"""Decided history: approvals and IT quarantine items already decided, who decided what and when; filtered, paged, CSV.

Department heads see the decided broadcasts they could have decided (their
departments'); admins every one; IT staff and admins the quarantine's.
Reading the history is audited like reading the queues.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from archive import audit
from console import downloads
from console.access import current_user, requires, runtime_of, source_of
from console.approvals import APPROVERS
from console.quarantine import ROLES as QUARANTINE_ROLES
from console.render import render
from quarantine import approvals, holds, it_quarantine

PER_PAGE = 50
STATES = {"": "any decision", holds.RELEASED: "released (approved)", holds.REJECTED: "rejected (or expired)"}
FIELDS = (
    "decided_at",
    "decided_by",
    "state",
    "decision_note",
    "subject",
    "mail_from",
    "rcpt_to",
    "created_at",
    "message_id",
)


def _filters(request: Request) -> dict[str, str]:
    query = request.query_params
    state = query.get("state", "")
    return {
        "by": query.get("by", "").strip()[:200],
        "q": query.get("q", "").strip()[:200],
        "state": state if state in STATES else "",
    }


def _page(request: Request) -> int:
    value = request.query_params.get("page", "1")
    return max(int(value), 1) if value.isdigit() else 1


def _visible(request: Request, queue_name: str, filters: dict[str, str], page: int) -> tuple[int, list[dict[str, Any]]]:
    """One page of decided holds the signed-in person may read (every one, for CSV: page 0)."""
    user = current_user(request)
    assert user is not None
    runtime = runtime_of(request)
    criteria: dict[str, Any] = {
        "state": filters["state"] or None,
        "decided_by": filters["by"] or None,
        "text": filters["q"] or None,
    }
    with runtime.database.read() as connection:
        head = queue_name == approvals.QUEUE and user["role"] != "admin"
        if not head:  # the database pages
            limit = None if page == 0 else PER_PAGE
            return holds.decided(connection, queue_name, limit=limit, offset=max(page - 1, 0) * PER_PAGE, **criteria)
        # A department head's: only broadcasts of departments they decide for (few: approvals are rare).
        _, rows = holds.decided(connection, queue_name, limit=None, **criteria)
        mine = []
        for hold in rows:
            try:
                approvals.authority(
                    runtime.directory,
                    runtime.config.settings.approvals,
                    approvals.request_of(connection, hold),
                    user.get("email") or None,
                )
            except approvals.DecisionRefused:
                continue
            mine.append(hold)
    return len(mine), (mine if page == 0 else mine[(page - 1) * PER_PAGE : page * PER_PAGE])


def _history(request: Request, queue_name: str, title: str, back: str) -> Response:
    filters, page = _filters(request), _page(request)
    as_csv = downloads.wanted(request)
    total, rows = _visible(request, queue_name, filters, 0 if as_csv else page)
    user = current_user(request)
    assert user is not None
    with runtime_of(request).database.write() as connection:
        audit.record(
            connection,
            user["login"],
            f"{queue_name}.history",
            None,
            source=source_of(request),
            details={**filters, "page": page, "csv": as_csv, "total": total},
        )
    if as_csv:
        return downloads.csv_response(f"{queue_name}-decided", FIELDS, rows)

    def link(**changes: Any) -> str:
        return request.url.path + "?" + urlencode({**filters, "page": page, **changes})

    return render(
        request,
        "history.html",
        {
            "title": title,
            "back": back,
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max((total + PER_PAGE - 1) // PER_PAGE, 1),
            "filters": filters,
            "states": STATES,
            "link": link,
        },
    )


@requires(*APPROVERS)
def approval_history(request: Request) -> Response:
    return _history(request, approvals.QUEUE, "Decided broadcasts", "approvals")


@requires(*QUARANTINE_ROLES)
def quarantine_history(request: Request) -> Response:
    return _history(request, it_quarantine.QUEUE, "Decided quarantine messages", "quarantine_list")


routes = [
    Route("/history/approvals", approval_history, name="approval_history"),
    Route("/history/quarantine", quarantine_history, name="quarantine_history"),
]
nav: tuple[tuple[str, str], ...] = ()
