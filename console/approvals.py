"""Broadcast approvals in the console: the department heads' queue, one message, and the emailed links.

A department head (or delegate, or the fallback approver) sees the pending
broadcasts they may decide, matched through their console account's
`email`; admins see every one. A message is shown safely: its text, its HTML
sanitised (no scripts, styles or remote content), its attachments by name
and size. Approve and reject are audited POSTs.

The links in approval e-mails open `/approvals/token/<token>` without a
login: the GET only shows the message and a confirmation form (mail
scanners that follow links change nothing); the POST decides. That POST
carries the CSRF token of the visitor's own session, which the confirmation
page set, so another site cannot make an approver's browser decide.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from archive import audit
from console import bulk, downloads
from console.access import (
    Act,
    action,
    current_user,
    public,
    public_action,
    requires,
    runtime_of,
    source_of,
)
from console.render import flash, render
from console.security import form_of
from milter.kernel.db import utcnow
from quarantine import approval_note, approval_tokens, approval_view, approvals, holds

if TYPE_CHECKING:
    from milter.runtime import Runtime

APPROVERS = ("department-head", "admin")
MESSAGE_ID = re.compile(r"^[0-9A-F]{11,40}$")
MAX_TOKEN = 1000
CSV_FIELDS = (
    "subject",
    "sender",
    "sender_name",
    "to",
    "held_at",
    "rejected_unless_decided_by",
    "waiting_for",
    "you_decide_as",
    "message_id",
)


def _decider(request: Request, user: dict[str, Any]) -> approvals.Decider:
    return approvals.Decider(
        actor=user["login"],
        address=user.get("email") or None,
        via="console",
        admin=user["role"] == "admin",
        source=source_of(request),
    )


def _not_found(request: Request, text: str = "There is no such message in the approval queue.") -> Response:
    return render(request, "error.html", {"status": 404, "title": "Not found", "text": text}, status_code=404)


def _message_view(
    runtime: Runtime, hold: dict[str, Any], request_row: dict[str, Any], address: str | None, *, admin: bool = False
) -> dict[str, Any]:
    """What every page showing a held broadcast needs."""
    now = utcnow()
    settings = runtime.config.settings.approvals
    message = holds.message_of(runtime, hold)
    html = approval_view.safe_html(message)
    return {
        "hold": hold,
        "request_row": request_row,
        "summary": approval_view.summarise(message),
        "text": approval_view.text_of(message),
        "safe_html": Markup(html) if html is not None else None,  # sanitised by nh3: safe to insert
        "note": approvals.note_for(runtime.directory, settings, request_row, address, now, admin=admin),
        "has_text": approval_note.has_text(message.raw),
        "decides": approvals.decides_words(runtime.directory, settings, request_row),
        "schedule": approvals.schedule_of(settings, request_row["held_at"]),
        "size_words": approval_view.size_words,
    }


# -- signed-in pages -------------------------------------------------------------


@requires(*APPROVERS)
def approval_list(request: Request) -> Response:
    user = current_user(request)
    assert user is not None
    runtime = runtime_of(request)
    admin = user["role"] == "admin"
    address = user.get("email") or None
    with runtime.database.read() as connection:
        items = approvals.pending(
            connection, runtime.directory, runtime.config.settings.approvals, address, admin=admin
        )
    if downloads.wanted(request):
        rows = [
            {
                "subject": item.hold["subject"],
                "sender": item.request["sender"],
                "sender_name": item.request["sender_name"],
                "to": item.request["reach"],
                "held_at": item.hold["created_at"],
                "rejected_unless_decided_by": item.schedule.expire,
                "waiting_for": item.waiting_for,
                "you_decide_as": "" if admin else item.capacity,
                "message_id": item.hold["message_id"],
            }
            for item in items
        ]
        return downloads.csv_response("approvals-waiting", CSV_FIELDS, rows, request)
    return render(request, "approvals.html", {"items": items, "admin": admin, "address": address})


@requires(*APPROVERS)
def approval_page(request: Request) -> Response:
    user = current_user(request)
    assert user is not None
    runtime = runtime_of(request)
    message_id = request.path_params["message_id"]
    if not MESSAGE_ID.match(message_id):
        return _not_found(request)
    with runtime.database.read() as connection:
        hold = approvals.hold_for_message(connection, message_id)
        request_row = approvals.request_of(connection, hold) if hold else None
    if hold is None or request_row is None:
        return _not_found(request)
    decider = _decider(request, user)
    refused = None
    capacity = None
    try:  # those who may decide it may read it, decided or not; admins read every one
        capacity = approvals.authority(
            runtime.directory, runtime.config.settings.approvals, request_row, decider.address, admin=decider.admin
        ).capacity
    except approvals.DecisionRefused as exc:
        refused = str(exc)
    if refused is not None and not decider.admin:
        return render(
            request, "error.html", {"status": 403, "title": "Not yours to decide", "text": refused}, status_code=403
        )
    # Reading a held message is an action worth knowing about, like reading the audit log.
    with runtime.database.write() as connection:
        audit.record(
            connection,
            user["login"],
            "approval.view",
            message_id,
            source=source_of(request),
            details={"hold": hold["id"]},
        )
    context = _message_view(runtime, hold, request_row, decider.address, admin=decider.admin)
    return render(request, "approval.html", {**context, "capacity": capacity, "refused": refused})


def _decide_in_console(request: Request, act: Act, verb: str) -> Response:
    runtime = runtime_of(request)
    message_id = request.path_params["message_id"]
    act.target = message_id
    if not MESSAGE_ID.match(message_id):
        return _not_found(request)
    with runtime.database.read() as connection:
        hold = approvals.hold_for_message(connection, message_id)
    if hold is None:
        return _not_found(request)
    form = form_of(request)
    text = str(form.get("reason" if verb == "reject" else "note", ""))

    def record(connection: Any, _action: str, target: str, details: dict[str, Any]) -> None:
        act.target = target
        act.details.update(details)
        act.record(connection)

    decider = _decider(request, act.user)
    try:
        if verb == "approve":
            outcome = approvals.approve(runtime, hold["id"], decider, note=text, audit_hook=record)
        else:
            outcome = approvals.reject(runtime, hold["id"], decider, reason=text, audit_hook=record)
    except (approvals.DecisionRefused, approval_tokens.TokenRefused) as exc:
        act.details.update({"decision": verb, "refused": str(exc), "hold": hold["id"]})
        flash(request, str(exc), "error")
        return RedirectResponse(request.url_for("approval", message_id=message_id).path, status_code=303)
    flash(request, outcome.words, "ok")
    return RedirectResponse(request.url_for("approvals").path, status_code=303)


@action("approval.decision", *APPROVERS)
def approve(request: Request, act: Act) -> Response:
    return _decide_in_console(request, act, "approve")


@action("approval.decision", *APPROVERS)
def reject(request: Request, act: Act) -> Response:
    return _decide_in_console(request, act, "reject")


@action("approval.bulk", *APPROVERS)
def approve_or_reject_many(request: Request, act: Act) -> Response:
    """Several ticked broadcasts approved (or rejected, with one reason for all), each decided and audited by itself."""
    runtime = runtime_of(request)
    form = form_of(request)
    verb = str(form.get("decision", ""))
    text = str(form.get("reason" if verb == "reject" else "note", "")).strip()
    back = RedirectResponse(request.url_for("approvals").path, status_code=303)
    ids = [value for value in bulk.chosen([str(v) for v in form.getlist("message")]) if MESSAGE_ID.match(value)]
    if verb not in ("approve", "reject") or not ids:
        flash(request, "Tick the messages to decide, then choose Approve or Reject.", "error")
        return back
    if verb == "reject" and not text:
        flash(
            request, "Give a reason for the rejection: it is sent to each sender so they know what to change.", "error"
        )
        return back
    decider = _decider(request, act.user)
    subjects: dict[str, str] = {}

    def decide(message_id: str) -> None:
        with runtime.database.read() as connection:
            hold = approvals.hold_for_message(connection, message_id)
        if hold is None:
            raise approvals.DecisionRefused("it is not in the approval queue.")
        subjects[message_id] = f"“{hold['subject'] or '(no subject)'}”"
        if verb == "approve":  # approvals.approve writes this item's own audit entry, with the person
            approvals.approve(runtime, hold["id"], decider, note=text)
        else:
            approvals.reject(runtime, hold["id"], decider, reason=text)

    outcome = bulk.each(ids, decide, (approvals.DecisionRefused,), lambda m: subjects.get(m, m))
    outcome.tell(act, "approved" if verb == "approve" else "rejected")
    return back


# -- the emailed links -----------------------------------------------------------

STATUS = {"forged": 400, "unknown": 404, "used": 410, "revoked": 410, "expired": 410}


def _claim(request: Request) -> tuple[approval_tokens.Claim, dict[str, Any], dict[str, Any]]:
    """The link's claim, its pending hold and request; raises TokenRefused or DecisionRefused."""
    runtime = runtime_of(request)
    token = request.path_params["token"]
    if len(token) > MAX_TOKEN:
        raise approval_tokens.TokenRefused("forged", "This link is not a valid approval link.")
    signer = approval_tokens.serializer_for(runtime.config.settings.console.secret_key_file)
    claim = approval_tokens.read(signer, token)
    now = utcnow()
    with runtime.database.read() as connection:
        hold = approvals.hold_for_message(connection, claim.message_id)
        if hold is None:
            raise approval_tokens.TokenRefused(
                "unknown", "This link belongs to a message that is not in the approval queue."
            )
        request_row = approvals.request_of(connection, hold)
        if hold["state"] != "pending":
            when = f" on {hold['decided_at']:%Y-%m-%d at %H:%M} UTC" if hold["decided_at"] else ""
            raise approval_tokens.TokenRefused(
                "revoked",
                f"This message was already {hold['state']} by {hold['decided_by']}{when}; nothing was changed.",
            )
        approval_tokens.check(connection, claim, now)
    approvals.authority(runtime.directory, runtime.config.settings.approvals, request_row, claim.approver)
    return claim, hold, request_row


def _refused(request: Request, exc: Exception) -> Response:
    kind = exc.kind if isinstance(exc, approval_tokens.TokenRefused) else "refused"
    status = STATUS.get(kind, 403)
    return render(
        request,
        "error.html",
        {"status": status, "title": "This link cannot be used", "text": str(exc)},
        status_code=status,
    )


@public
def token_page(request: Request) -> Response:
    """What the emailed link opens: the message and a form to confirm. Changes nothing."""
    try:
        claim, hold, request_row = _claim(request)
    except (approval_tokens.TokenRefused, approvals.DecisionRefused) as exc:
        return _refused(request, exc)
    runtime = runtime_of(request)
    person = runtime.directory.person(claim.approver)
    context = _message_view(runtime, hold, request_row, claim.approver)
    return render(
        request,
        "approval_token.html",
        {
            **context,
            "choice": claim.choice,
            "token": request.path_params["token"],
            "approver": person.name if person else claim.approver,
            "error": None,
        },
    )


@public_action
def token_decide(request: Request) -> Response:
    """The confirmation form's POST: decides, with the link spent in the same transaction. Audits itself."""
    runtime = runtime_of(request)
    source = source_of(request)
    form = form_of(request)
    choice = form.get("decision")
    try:
        claim, hold, request_row = _claim(request)
        if choice != claim.choice:
            raise approval_tokens.TokenRefused(
                "forged", "The form does not match the link; open the link from the e-mail again."
            )
    except (approval_tokens.TokenRefused, approvals.DecisionRefused) as exc:
        kind = exc.kind if isinstance(exc, approval_tokens.TokenRefused) else "refused"
        with runtime.database.write() as connection:
            audit.record(
                connection,
                "anonymous",
                "approval.link_refused",
                None,
                source=source,
                details={"kind": kind, "reason": str(exc)},
            )
        return _refused(request, exc)
    text = str(form.get("reason" if choice == "reject" else "note", "")).strip()
    if choice == "reject" and not text:  # ask again on the same page; the link is not spent
        person = runtime.directory.person(claim.approver)
        context = _message_view(runtime, hold, request_row, claim.approver)
        return render(
            request,
            "approval_token.html",
            {
                **context,
                "choice": choice,
                "token": request.path_params["token"],
                "approver": person.name if person else claim.approver,
                "error": "Give a reason for the rejection: it is sent to the sender so they know what to change.",
            },
            status_code=400,
        )
    decider = approvals.Decider(actor=claim.approver, address=claim.approver, via="link", source=source)
    try:
        if choice == "approve":
            outcome = approvals.approve(runtime, hold["id"], decider, note=text, claim=claim)
        else:
            outcome = approvals.reject(runtime, hold["id"], decider, reason=text, claim=claim)
    except (approvals.DecisionRefused, approval_tokens.TokenRefused) as exc:
        return _refused(request, exc)
    return render(request, "approval_done.html", {"outcome": outcome, "subject": hold["subject"] or "(no subject)"})


routes = [
    Route("/approvals", approval_list, name="approvals"),
    Route("/approvals/decide", approve_or_reject_many, methods=["POST"], name="approvals_decide"),
    Route("/approvals/token/{token}", token_page, name="approval_token"),
    Route("/approvals/token/{token}", token_decide, methods=["POST"], name="approval_token_decide"),
    Route("/approvals/{message_id}", approval_page, name="approval"),
    Route("/approvals/{message_id}/approve", approve, methods=["POST"], name="approval_approve"),
    Route("/approvals/{message_id}/reject", reject, methods=["POST"], name="approval_reject"),
]
nav = [("Approvals", "approvals")]
