"""The IT quarantine page (admins and IT staff): the queue with filters, a safe preview, release and reject.

The preview never loads anything the sender chose: text is shown as text,
HTML is cleaned by nh3 (Ammonia) down to formatting tags with no attributes,
so no image, style, script, form or link survives, and the console's CSP
forbids the rest. Opening a quarantined message is audited, like every
decision (through quarantine/it_quarantine.py, in the same transaction).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import nh3
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from archive import audit
from console import bulk, downloads
from console.access import Act, action, current_user, requires, runtime_of, source_of
from console.render import flash, render
from console.security import form_of
from milter.mail.message import Message
from policies.rules.software import Software, files_of, format_size
from quarantine import holds, it_quarantine

if TYPE_CHECKING:
    from milter.runtime import Runtime

ROLES = ("admin", "it-staff")
PREVIEW_CHARS = 20_000
AGES = {"": None, "1h": timedelta(hours=1), "1d": timedelta(days=1), "3d": timedelta(days=3), "7d": timedelta(days=7)}
RULES = ("unknown_sender", "software", "virus", "inspection")
CSV_FIELDS = ("created_at", "age", "mail_from", "rcpt_to", "subject", "rules", "reason", "id", "message_id")
# Formatting only: no attributes at all, so no links, images, styles or event handlers.
SAFE_TAGS = {
    "p",
    "br",
    "div",
    "span",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "s",
    "ul",
    "ol",
    "li",
    "blockquote",
    "pre",
    "code",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "td",
    "th",
    "caption",
    "a",
    "small",
    "sub",
    "sup",
}


def safe_html(html: str) -> str:
    return nh3.clean(
        html[: PREVIEW_CHARS * 4],
        tags=SAFE_TAGS,
        attributes={},
        link_rel=None,
        strip_comments=True,
        clean_content_tags={"script", "style", "title", "head"},
    )


@requires(*ROLES)
def quarantine_list(request: Request) -> Response:
    query = request.query_params
    filters = {
        "recipient": query.get("recipient", "").strip()[:320],
        "sender": query.get("sender", "").strip()[:320],
        "rule": query.get("rule", "") if query.get("rule", "") in RULES else "",
        "age": query.get("age", "") if query.get("age", "") in AGES else "",
    }
    with runtime_of(request).database.read() as connection:
        rows = it_quarantine.pending(
            connection,
            recipient=filters["recipient"] or None,
            sender=filters["sender"] or None,
            rule=filters["rule"] or None,
            older_than=AGES[filters["age"]],
        )
    for row in rows:
        row["age"] = it_quarantine.age(row["created_at"])
        row["rules"] = list(
            dict.fromkeys(f["policy"] for f in row["findings"] if f.get("mode", "enforce") == "enforce")
        )
    if downloads.wanted(request):
        return downloads.csv_response("quarantine-waiting", CSV_FIELDS, rows, request)
    csv_link = request.url.path + "?" + urlencode({**filters, "format": "csv"})
    return render(
        request,
        "quarantine.html",
        {"rows": rows, "filters": filters, "rules": RULES, "ages": list(AGES), "csv_link": csv_link},
    )


def _attachments(runtime: Runtime, message: Message) -> list[dict[str, Any]]:
    """Each attachment and archive member with its true type and what the software rule says of it."""
    checker = Software(runtime.config.policies[Software.name], runtime.directory)
    shown = []
    for file in files_of(message):
        hits = checker.hits_in(file)
        shown.append(
            {
                "path": file.path,
                "name": file.name,
                "depth": file.depth,
                "size": format_size(file.size),
                "type": file.true_type.description.split(",")[0] if file.true_type else "not read",
                "mime": file.true_type.mime if file.true_type else "",
                "encrypted": file.encrypted,
                "disguised": bool(file.true_type and file.true_type.name_disagrees),
                "findings": [f"{hit.kind}: {hit.why}" for hit in hits],
            }
        )
    return shown


@requires(*ROLES)
def quarantine_item(request: Request) -> Response:
    hold_id = int(request.path_params["hold_id"])
    runtime = runtime_of(request)
    with runtime.database.read() as connection:
        held = it_quarantine.get(connection, hold_id)
    if held is None:
        return render(
            request,
            "error.html",
            {"status": 404, "title": "Not found", "text": f"There is no quarantined message {hold_id}."},
            status_code=404,
        )
    user = current_user(request)
    assert user is not None
    with runtime.database.write() as connection:  # looking at quarantined mail is itself audited
        audit.record(
            connection,
            user["login"],
            "quarantine.view",
            held["message_id"],
            source=source_of(request),
            details={"hold": hold_id},
        )
    message = holds.message_of(runtime, held)
    html = next((body.html for body in message.text_bodies if body.html), None)
    return render(
        request,
        "quarantine_item.html",
        {
            "held": held,
            "age": it_quarantine.age(held["created_at"]),
            "message": message,
            "header_from": message.header("From") or "",
            "header_to": message.header("To") or "",
            "date": message.header("Date") or "",
            "text": message.body_text[:PREVIEW_CHARS],
            "truncated": len(message.body_text) > PREVIEW_CHARS,
            "html": safe_html(html) if html else None,
            "attachments": _attachments(runtime, message),
            "problems": [str(p) for p in message.problems[:50]],
        },
    )


def _back(request: Request, hold_id: int) -> Response:
    return RedirectResponse(request.url_for("quarantine_item", hold_id=hold_id).path, status_code=303)


@action("quarantine.decide", *ROLES)
def quarantine_release(request: Request, act: Act) -> Response:
    return _decide(request, act, "release")


@action("quarantine.decide", *ROLES)
def quarantine_reject(request: Request, act: Act) -> Response:
    return _decide(request, act, "reject")


def _decide(request: Request, act: Act, verb: str) -> Response:
    hold_id = int(request.path_params["hold_id"])
    form = form_of(request)
    recipients = [str(r) for r in form.getlist("recipient")]
    trust = form.get("trust") == "yes"
    reason = str(form.get("reason", "")).strip()[:2000]
    act.target, act.details = str(hold_id), {"decision": verb, "recipients": recipients, "trust": trust}
    runtime = runtime_of(request)
    try:
        with act.transaction() as connection:
            if verb == "release":
                done = it_quarantine.release(
                    connection,
                    runtime,
                    hold_id,
                    act.user["login"],
                    recipients=recipients or None,
                    trust=trust,
                    source=source_of(request),
                )
            else:
                done = it_quarantine.reject(
                    connection,
                    runtime,
                    hold_id,
                    act.user["login"],
                    reason=reason,
                    recipients=recipients or None,
                    source=source_of(request),
                )
    except it_quarantine.QuarantineError as exc:
        act.details["refused"] = str(exc)
        flash(request, f"Nothing was done: {exc}.", "error")
        return _back(request, hold_id)
    what = "Released to" if verb == "release" else "Rejected for"
    text = f"{what} {', '.join(done.recipients)}."
    if done.trusted:
        text += f" {done.trusted} is now a known sender for {'them' if len(done.recipients) > 1 else 'this recipient'}."
    if verb == "reject":
        text += " Each was sent a notice with your reason."
    if done.still_held:
        flash(request, text + f" Still held for {', '.join(done.still_held)}.", "ok")
        return _back(request, hold_id)
    flash(request, text, "ok")
    return RedirectResponse(request.url_for("quarantine_list").path, status_code=303)


@action("quarantine.bulk", *ROLES)
def quarantine_decide_many(request: Request, act: Act) -> Response:
    """Several ticked messages released (or rejected, with one reason for all), each decided and audited by itself."""
    form = form_of(request)
    verb = str(form.get("decision", ""))
    reason = str(form.get("reason", "")).strip()[:2000]
    back = RedirectResponse(request.url_for("quarantine_list").path, status_code=303)
    ids = [int(value) for value in bulk.chosen([str(v) for v in form.getlist("hold")]) if value.isdigit()]
    if verb not in ("release", "reject") or not ids:
        flash(request, "Tick the messages to decide, then choose Release or Reject.", "error")
        return back
    if verb == "reject" and not reason:
        flash(
            request,
            "Nothing was done: give a reason; the recipients are told why the message was not delivered.",
            "error",
        )
        return back
    runtime = runtime_of(request)
    login, source = act.user["login"], source_of(request)

    def decide(item: str) -> None:
        hold_id = int(item)
        with runtime.database.write() as connection:
            if verb == "release":
                done = it_quarantine.release(connection, runtime, hold_id, login, source=source)
            else:
                done = it_quarantine.reject(connection, runtime, hold_id, login, reason=reason, source=source)
            details = {"decision": verb, "recipients": done.recipients, "trust": False}
            bulk.audit_item(connection, act, "quarantine.decide", str(hold_id), details)

    outcome = bulk.each([str(i) for i in ids], decide, (it_quarantine.QuarantineError,), lambda i: f"message {i}")
    outcome.tell(act, "released" if verb == "release" else "rejected")
    return back


routes = [
    Route("/quarantine", quarantine_list, name="quarantine_list"),
    Route("/quarantine/decide", quarantine_decide_many, methods=["POST"], name="quarantine_decide"),
    Route("/quarantine/{hold_id:int}", quarantine_item, name="quarantine_item"),
    Route("/quarantine/{hold_id:int}/release", quarantine_release, methods=["POST"], name="quarantine_release"),
    Route("/quarantine/{hold_id:int}/reject", quarantine_reject, methods=["POST"], name="quarantine_reject"),
]
nav = (("IT quarantine", "quarantine_list"),)
