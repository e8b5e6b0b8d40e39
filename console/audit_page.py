"""The audit log page (admins and auditors): newest first, paged, filtered, and the chain check.

Reading the log is itself an action worth knowing about, so every view is audited.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from archive import audit
from console.access import Act, action, current_user, requires, runtime_of, source_of
from console.render import flash, render

READERS = ("admin", "auditor")
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200


def _positive(value: str | None, default: int | None = None, most: int | None = None) -> int | None:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    if number is None or number < 1:
        return default
    return min(number, most) if most else number


@requires(*READERS)
def audit_log(request: Request) -> Response:
    query = request.query_params
    actor = query.get("actor", "").strip()[:200] or None
    action_name = query.get("action", "").strip()[:64] or None
    per_page = _positive(query.get("per_page"), PAGE_SIZE, MAX_PAGE_SIZE) or PAGE_SIZE
    before, after = _positive(query.get("before")), _positive(query.get("after"))
    user = current_user(request)
    assert user is not None
    filters = {"actor": actor, "action": action_name}
    database = runtime_of(request).database
    with database.write() as connection:
        audit.record(
            connection,
            user["login"],
            "audit.view",
            None,
            source=source_of(request),
            details={**filters, "before": before, "after": after},
        )
    with database.read() as connection:
        if after is not None and before is None:
            rows = audit.newer(connection, limit=per_page, after=after, **filters)
        else:
            rows = audit.entries(connection, limit=per_page, before=before, **filters)
        has_newer = bool(rows) and bool(audit.newer(connection, limit=1, after=rows[0]["id"], **filters))
        has_older = bool(rows) and bool(audit.entries(connection, limit=1, before=rows[-1]["id"], **filters))
        known_actions = audit.actions(connection)
        total = audit.count(connection)

    def link(**position: int) -> str:
        params: dict[str, Any] = {key: value for key, value in filters.items() if value}
        if per_page != PAGE_SIZE:
            params["per_page"] = per_page
        params.update(position)
        return request.url.path + ("?" + urlencode(params) if params else "")

    return render(
        request,
        "audit.html",
        {
            "rows": rows,
            "actor": actor or "",
            "action": action_name or "",
            "actions": known_actions,
            "total": total,
            "newer_link": link(after=rows[0]["id"]) if has_newer else None,
            "older_link": link(before=rows[-1]["id"]) if has_older else None,
            "newest_link": link() if has_newer else None,
        },
    )


@action("audit.verify", *READERS)
def verify_chain(request: Request, act: Act) -> Response:
    with runtime_of(request).database.read() as connection:
        broken = audit.verify(connection)
        total = audit.count(connection)
        entry = audit.get(connection, broken[0]) if broken else None
    target = request.url_for("audit_log").path
    if broken is None:
        flash(request, f"The audit chain is intact: all {total} entries check out.", "ok")
        act.details = {"intact": True, "entries": total}
    else:
        entry_id, problem = broken
        about = f" (recorded {entry['at']:%Y-%m-%d %H:%M:%S}, action {entry['action']})" if entry else ""
        flash(request, f"The audit chain is broken at entry {entry_id}{about}: {problem}.", "error")
        act.details = {"intact": False, "entries": total, "first_broken": entry_id, "problem": problem}
        target += f"?before={entry_id + 1}"  # show the broken entry at the top
    return RedirectResponse(target, status_code=303)
