"""The records officers' pages: archive search, message view, FOIA requests (review, redact, export), activity reports.

Every search, view, download and report is written to the audit log; every
change goes through @action, so its audit entry commits with it. A message
view never loads anything the sender chose: HTML bodies are cleaned by nh3 to
formatting tags with no attributes (no images, links, styles or scripts).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import nh3
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from archive import audit, export, foia, index, query, records, rendering, report, search
from archive.foia import FoiaError
from console import bulk, downloads
from console.access import Act, action, current_user, requires, runtime_of, source_of
from console.render import flash, render
from console.security import form_of
from milter.kernel.blobstore import BlobCorrupt, BlobMissing
from milter.mail.message import message_from_record

ROLES = ("records-officer", "admin")
PER_PAGE = 50
CSV_FIELDS = (
    "record_id",
    "message_date",
    "header_from",
    "header_to",
    "subject",
    "direction",
    "action",
    "has_attachment",
    "incomplete",
)
MAX_CSV_ROWS = 10_000  # a spreadsheet's worth; a larger set is an export, not a list
PREVIEW_HTML_CHARS = 200_000
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
    "small",
    "sub",
    "sup",
}


def _audit(http: Request, action_name: str, target: str | None, **details: Any) -> None:
    """A view or a search by the signed-in person, in the audit log."""
    user = current_user(http)
    assert user is not None
    with runtime_of(http).database.write() as connection:
        audit.record(
            connection,
            user["login"],
            action_name,
            target,
            source=source_of(http),
            details={"path": http.url.path, **details},
        )


def _int(value: str | None, default: int, lowest: int = 1, highest: int = 10**9) -> int:
    try:
        return min(max(int(value or default), lowest), highest)
    except ValueError:
        return default


def _request_id(request: Request) -> int | None:
    value = request.query_params.get("request", "")
    return int(value) if value.isdigit() else None


def safe_html(html: str) -> Markup:
    cleaned = nh3.clean(
        html[:PREVIEW_HTML_CHARS],
        tags=SAFE_TAGS,
        attributes={},
        link_rel=None,
        strip_comments=True,
        clean_content_tags={"script", "style", "title", "head"},
    )
    return Markup(cleaned)  # safe: nh3 left formatting tags only, without attributes


# -- search -----------------------------------------------------------------------


@requires(*ROLES)
def records_search(request: Request) -> Response:
    params = request.query_params
    text = params.get("q", "")[: query.MAX_LENGTH]
    sort = params.get("sort", "newest") if params.get("sort") in search.SORTS else "newest"
    page = _int(params.get("page"), 1)
    per_page = _int(params.get("per_page"), PER_PAGE, 10, 200)
    request_id = _request_id(request)
    runtime = runtime_of(request)
    result, error, linked = None, None, None
    with runtime.database.read() as connection:
        if request_id is not None:
            linked = foia.get(connection, request_id)
        if "q" in params:
            try:
                result = search.search(
                    connection, text, page=page, per_page=per_page, sort=sort, zone=runtime.config.settings.archive.zone
                )
            except query.QueryError as exc:
                error = str(exc)
        reviews = foia.current_reviews(connection, request_id) if linked and request_id is not None else {}
    if "q" in params:
        _audit(
            request,
            "archive.search",
            text,
            total=result.total if result else None,
            page=page,
            sort=sort,
            error=error,
            request=request_id,
            csv=downloads.wanted(request),
        )
    if result is not None and downloads.wanted(request):
        with runtime.database.read() as connection:
            hits = _all_hits(connection, text, sort, runtime.config.settings.archive.zone)
        return downloads.csv_response("records-search", CSV_FIELDS, hits)

    def link(**changes: Any) -> str:
        values = {"q": text, "sort": sort, "page": page, **changes}
        if request_id is not None:
            values["request"] = request_id
        return request.url.path + "?" + urlencode(values)

    return render(
        request,
        "records_search.html",
        {
            "q": text,
            "sort": sort,
            "sorts": search.SORTS,
            "result": result,
            "error": error,
            "linked": linked,
            "reviews": reviews,
            "fields": query.FIELDS,
            "exemptions": runtime.config.settings.archive.foia.exemptions,
            "link": link,
            "incomplete_link": f"{request.url_for('records_incomplete').path}?{urlencode({'q': text})}",
        },
    )


def _all_hits(connection: Any, text: str, sort: str, zone: Any) -> list[dict[str, Any]]:
    """Every match of a search (up to MAX_CSV_ROWS), page by page."""
    hits: list[dict[str, Any]] = []
    page = 1
    while len(hits) < MAX_CSV_ROWS:
        result = search.search(connection, text, page=page, per_page=search.MAX_PER_PAGE, sort=sort, zone=zone)
        hits.extend(result.hits)
        if page >= result.pages:
            break
        page += 1
    return hits[:MAX_CSV_ROWS]


@requires(*ROLES)
def records_incomplete(request: Request) -> Response:
    text = request.query_params.get("q", "")[: query.MAX_LENGTH]
    page = _int(request.query_params.get("page"), 1)
    runtime = runtime_of(request)
    try:
        after, before = query.period(query.parse(text))
    except query.QueryError as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(request.url_for("records_search").path, status_code=303)
    with runtime.database.read() as connection:
        total, rows = search.incomplete(
            connection, after, before, runtime.config.settings.archive.zone, page=page, per_page=PER_PAGE
        )
    _audit(request, "archive.search", text, incomplete=True, total=total, page=page)
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    return render(
        request,
        "records_incomplete.html",
        {"q": text, "total": total, "rows": rows, "page": page, "pages": pages, "after": after, "before": before},
    )


# -- one message ----------------------------------------------------------------------


def _record_or_404(connection: Any, record_id: int) -> dict[str, Any]:
    record = records.get(connection, record_id)
    if record is None:
        raise HTTPException(404)
    return record


@requires(*ROLES)
def records_message(request: Request) -> Response:
    record_id = int(request.path_params["record_id"])
    request_id = _request_id(request)
    runtime = runtime_of(request)
    with runtime.database.read() as connection:
        record = _record_or_404(connection, record_id)
        versions = records.records_for(connection, record["message_id"])
        indexed = connection.execute(
            index.archive_index.select().where(index.archive_index.c.record_id == record_id)
        ).first()
        linked = foia.get(connection, request_id) if request_id is not None else None
        review = (
            foia.current_reviews(connection, request_id).get(record_id) if linked and request_id is not None else None
        )
        history = foia.review_history(connection, request_id, record_id) if linked and request_id is not None else []
        redactions = foia.redactions(connection, request_id, record_id) if linked and request_id is not None else []
    _audit(request, "archive.view", record["message_id"], record=record_id, request=request_id)
    context: dict[str, Any] = {
        "record": record,
        "versions": versions,
        "indexed": dict(indexed._mapping) if indexed else None,
        "linked": linked,
        "review": review,
        "history": history,
        "redactions": redactions,
        "exemptions": runtime.config.settings.archive.foia.exemptions,
        "blob_problem": None,
    }
    try:
        raw = runtime.blobs.get(record["blob_sha256"], verify=True)
    except (BlobMissing, BlobCorrupt) as exc:
        context["blob_problem"] = (
            f"The stored message {'is missing' if isinstance(exc, BlobMissing) else 'fails its SHA-256 check'}: run `aup-milter archive verify`."
        )
        return render(
            request, "records_message.html", context | {"text": "", "pieces": [], "html_bodies": [], "attachments": []}
        )
    message = message_from_record(record, raw, runtime.config.settings.limits)
    text = rendering.rendered_text(message)
    spans = rendering.spans_for(text, redactions)
    context |= {
        "text": text,
        "pieces": rendering.redacted_pieces(text, spans) if spans else [],
        "html_bodies": [safe_html(body.html) for body in message.text_bodies if body.html],
        "attachments": [
            {
                "name": part.filename or f"part {part.path}",
                "type": part.content_type,
                "true_type": part.true_type.mime,
                "size": part.size,
            }
            for part in message.attachments
            if not part.is_inline_image
        ],
    }
    return render(request, "records_message.html", context)


@requires(*ROLES)
def records_raw(request: Request) -> Response:
    record_id = int(request.path_params["record_id"])
    runtime = runtime_of(request)
    with runtime.database.read() as connection:
        record = _record_or_404(connection, record_id)
    _audit(request, "archive.download", record["message_id"], record=record_id)
    return Response(
        runtime.blobs.get(record["blob_sha256"], verify=True),
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="record-{record_id}.eml"'},
    )


# -- FOIA requests --------------------------------------------------------------------


@requires(*ROLES)
def foia_list(request: Request) -> Response:
    runtime = runtime_of(request)
    with runtime.database.read() as connection:
        rows = foia.listing(connection)
        for row in rows:
            row["summary"] = foia.summary(connection, row["id"])
    return render(
        request,
        "foia_list.html",
        {
            "rows": rows,
            "kinds": foia.KINDS,
            "today": date.today(),
            "due_days": runtime.config.settings.archive.foia.due_business_days,
        },
    )


@action("foia.create", *ROLES)
def foia_create(request: Request, act: Act) -> Response:
    form = form_of(request)
    runtime = runtime_of(request)
    try:
        received = date.fromisoformat(str(form.get("received_on") or date.today().isoformat()))
    except ValueError:
        flash(request, "The date received is not a date; write it as 2026-01-31.", "error")
        return RedirectResponse(request.url_for("foia_list").path, status_code=303)
    try:
        with act.transaction() as connection:
            request_id = foia.create(
                connection,
                act.user["login"],
                runtime.config.settings.archive.foia,
                kind=str(form.get("kind", "foia")),
                title=str(form.get("title", "")),
                requester=str(form.get("requester", "")),
                contact=str(form.get("contact", "")) or None,
                description=str(form.get("description", "")) or None,
                number=str(form.get("number", "")) or None,
                received_on=received,
            )
            created = foia.require(connection, request_id)
            act.target, act.details = created["number"], {"request": request_id}
    except FoiaError as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(request.url_for("foia_list").path, status_code=303)
    flash(
        request,
        f"Request {created['number']} opened"
        + (f"; a response is due {created['due_on']}." if created["due_on"] else "."),
        "ok",
    )
    return RedirectResponse(request.url_for("foia_detail", request_id=request_id).path, status_code=303)


def _exports_of(runtime: Any, number: str) -> list[dict[str, Any]]:
    folder = Path(runtime.config.settings.archive.exports)
    found = sorted(folder.glob(f"{export.safe_name(number)}-*.zip"), reverse=True) if folder.is_dir() else []
    return [{"name": path.name, "size": path.stat().st_size} for path in found]


@requires(*ROLES)
def foia_detail(request: Request) -> Response:
    request_id = int(request.path_params["request_id"])
    runtime = runtime_of(request)
    with runtime.database.read() as connection:
        found = foia.get(connection, request_id)
        if found is None:
            raise HTTPException(404)
        reviews = list(foia.current_reviews(connection, request_id).values())
        for review in reviews:
            review["record"] = records.get(connection, review["record_id"])
            review["redactions"] = len(foia.redactions(connection, request_id, review["record_id"]))
        context = {
            "item": found,
            "kinds": foia.KINDS,
            "statuses": foia.STATUSES,
            "summary": foia.summary(connection, request_id),
            "searches": foia.searches(connection, request_id),
            "reviews": reviews,
            "events": foia.events(connection, request_id),
            "exports": _exports_of(runtime, found["number"]),
            "exemptions": runtime.config.settings.archive.foia.exemptions,
        }
    _audit(request, "foia.view", found["number"], request=request_id)
    return render(request, "foia_detail.html", context)


def _back_to_request(request: Request, request_id: int) -> Response:
    return RedirectResponse(request.url_for("foia_detail", request_id=request_id).path, status_code=303)


def _back_to_message(request: Request, request_id: int, record_id: int) -> Response:
    path = request.url_for("records_message", record_id=record_id).path
    return RedirectResponse(f"{path}?request={request_id}", status_code=303)


@action("foia.status", *ROLES)
def foia_status(request: Request, act: Act) -> Response:
    request_id = int(request.path_params["request_id"])
    form = form_of(request)
    try:
        with act.transaction() as connection:
            foia.set_status(
                connection,
                act.user["login"],
                request_id,
                str(form.get("status", "")),
                str(form.get("note", "")) or None,
            )
            act.target, act.details = str(request_id), {"status": form.get("status")}
        flash(request, f"Status set to {form.get('status')}.", "ok")
    except FoiaError as exc:
        flash(request, str(exc), "error")
    return _back_to_request(request, request_id)


@action("foia.search.save", *ROLES)
def foia_save_search(request: Request, act: Act) -> Response:
    request_id = int(request.path_params["request_id"])
    text = str(form_of(request).get("q", ""))[: query.MAX_LENGTH]
    runtime = runtime_of(request)
    try:
        with runtime.database.read() as connection:
            total = search.search(connection, text, per_page=1, zone=runtime.config.settings.archive.zone).total
        with act.transaction() as connection:
            foia.save_search(connection, act.user["login"], request_id, text, total)
            act.target, act.details = str(request_id), {"query": text, "total": total}
        flash(request, f"Search saved to the request ({total} messages).", "ok")
    except (FoiaError, query.QueryError) as exc:
        flash(request, str(exc), "error")
    return _back_to_request(request, request_id)


@action("foia.review", *ROLES)
def foia_review(request: Request, act: Act) -> Response:
    request_id, record_id = int(request.path_params["request_id"]), int(request.path_params["record_id"])
    form = form_of(request)
    choice = str(form.get("decision", ""))
    responsive = choice in ("release", "withhold")
    decision = foia.Review(
        record_id,
        responsive,
        choice if responsive else None,
        str(form.get("exemption", "")) or None,
        str(form.get("note", "")) or None,
    )
    if choice not in ("release", "withhold", "not-responsive"):
        flash(request, "Choose release, withhold or not responsive.", "error")
        return _back_to_message(request, request_id, record_id)
    try:
        with act.transaction() as connection:
            foia.review(
                connection, act.user["login"], runtime_of(request).config.settings.archive.foia, request_id, decision
            )
            act.target, act.details = (
                str(record_id),
                {"request": request_id, "decision": choice, "exemption": decision.exemption},
            )
        flash(request, f"Decision recorded: {choice.replace('-', ' ')}.", "ok")
    except FoiaError as exc:
        flash(request, str(exc), "error")
    return _back_to_message(request, request_id, record_id)


@action("foia.review.bulk", *ROLES)
def foia_review_many(request: Request, act: Act) -> Response:
    """Several ticked search results marked with one decision for the request, each recorded and audited by itself."""
    request_id = int(request.path_params["request_id"])
    form = form_of(request)
    choice = str(form.get("decision", ""))
    exemption = str(form.get("exemption", "")) or None
    back = {"q": str(form.get("q", ""))[: query.MAX_LENGTH], "request": request_id}
    back_to_search = RedirectResponse(f"{request.url_for('records_search').path}?{urlencode(back)}", status_code=303)
    ids = [value for value in bulk.chosen([str(v) for v in form.getlist("record")]) if value.isdigit()]
    if choice not in ("release", "withhold", "not-responsive") or not ids:
        flash(request, "Tick the messages, then choose release, withhold or not responsive.", "error")
        return back_to_search
    runtime = runtime_of(request)
    settings = runtime.config.settings.archive.foia
    responsive = choice in ("release", "withhold")

    def decide(item: str) -> None:
        decision = foia.Review(int(item), responsive, choice if responsive else None, exemption, None)
        with runtime.database.write() as connection:
            foia.review(connection, act.user["login"], settings, request_id, decision)
            details = {"request": request_id, "decision": choice, "exemption": exemption}
            bulk.audit_item(connection, act, "foia.review", item, details)

    outcome = bulk.each(ids, decide, (FoiaError,), lambda item: f"message {item}")
    outcome.tell(act, f"marked {choice.replace('-', ' ')}")
    act.target = str(request_id)
    return back_to_search


@action("foia.redact", *ROLES)
def foia_redact(request: Request, act: Act) -> Response:
    request_id, record_id = int(request.path_params["request_id"]), int(request.path_params["record_id"])
    form = form_of(request)
    start, end = str(form.get("start", "")).strip(), str(form.get("end", "")).strip()
    try:
        with act.transaction() as connection:
            redaction_id = foia.redact(
                connection,
                act.user["login"],
                runtime_of(request).config.settings.archive.foia,
                request_id,
                record_id,
                reason=str(form.get("reason", "")),
                text=str(form.get("text", "")) or None,
                start=int(start) if start.isdigit() else None,
                end=int(end) if end.isdigit() else None,
                note=str(form.get("note", "")) or None,
            )
            # the audit entry names the redaction and its reason, not the text it hides
            act.target, act.details = (
                str(record_id),
                {"request": request_id, "redaction": redaction_id, "reason": form.get("reason")},
            )
        flash(request, "Redaction added; the preview below shows it.", "ok")
    except FoiaError as exc:
        flash(request, str(exc), "error")
    return _back_to_message(request, request_id, record_id)


@action("foia.unredact", *ROLES)
def foia_unredact(request: Request, act: Act) -> Response:
    request_id, redaction_id = int(request.path_params["request_id"]), int(request.path_params["redaction_id"])
    record_id = _int(str(form_of(request).get("record_id", "")), 0, 0)
    try:
        with act.transaction() as connection:
            foia.unredact(connection, act.user["login"], request_id, redaction_id)
            act.target, act.details = str(record_id), {"request": request_id, "redaction": redaction_id}
        flash(request, "Redaction taken back.", "ok")
    except FoiaError as exc:
        flash(request, str(exc), "error")
    return _back_to_message(request, request_id, record_id)


@action("foia.export", *ROLES)
def foia_export(request: Request, act: Act) -> Response:
    request_id = int(request.path_params["request_id"])
    runtime = runtime_of(request)
    settings = runtime.config.settings

    def audited(connection: Any, package: export.Package) -> None:
        act.target, act.details = str(request_id), {"package": package.zip_path.name, "sha256": package.zip_sha256}
        act.record(connection)

    try:
        package = export.export(
            runtime.database,
            runtime.blobs,
            settings.limits,
            request_id,
            act.user["login"],
            Path(settings.archive.exports),
            settings.smtp.hostname,
            audit=audited,
        )
        flash(
            request,
            f"Package {package.zip_path.name} written: {package.released} released, {package.redacted} redacted, "
            f"{package.withheld} withheld.",
            "ok",
        )
    except (FoiaError, export.ExportError) as exc:
        flash(request, str(exc), "error")
    return _back_to_request(request, request_id)


@requires(*ROLES)
def foia_download(request: Request) -> Response:
    request_id, name = int(request.path_params["request_id"]), request.path_params["name"]
    runtime = runtime_of(request)
    with runtime.database.read() as connection:
        found = foia.get(connection, request_id)
    if found is None or name not in {e["name"] for e in _exports_of(runtime, found["number"])}:
        raise HTTPException(404)  # only this request's own packages, by exact name: no paths
    _audit(request, "foia.download", found["number"], request=request_id, package=name)
    return FileResponse(
        Path(runtime.config.settings.archive.exports) / name, media_type="application/zip", filename=name
    )


# -- activity report ---------------------------------------------------------------


@requires(*ROLES)
def records_report(request: Request) -> Response:
    params = request.query_params
    runtime = runtime_of(request)
    address = params.get("user", "").strip()[:320]
    today = date.today()
    context: dict[str, Any] = {
        "address": address,
        "since": params.get("since", date(today.year, 1, 1).isoformat()),
        "until": params.get("until", today.isoformat()),
        "result": None,
        "error": None,
    }
    if address:
        try:
            since, until = date.fromisoformat(context["since"]), date.fromisoformat(context["until"])
            with runtime.database.read() as connection:
                context["result"] = report.activity(
                    connection, address, since, until, runtime.config.settings.archive.zone
                )
        except ValueError as exc:
            context["error"] = str(exc) if "period" in str(exc) else "Write the dates as 2026-01-31."
        _audit(
            request, "archive.report", address, since=context["since"], until=context["until"], error=context["error"]
        )
        if context["result"]:
            most = max([row["sent"] + row["received"] for row in context["result"].by_day] or [1])
            context["bar"] = lambda n: round(100 * n / most)
    return render(request, "records_report.html", context)


routes = [
    Route("/records", records_search, name="records_search"),
    Route("/records/incomplete", records_incomplete, name="records_incomplete"),
    Route("/records/message/{record_id:int}", records_message, name="records_message"),
    Route("/records/message/{record_id:int}/raw", records_raw, name="records_raw"),
    Route("/records/report", records_report, name="records_report"),
    Route("/foia", foia_list, name="foia_list"),
    Route("/foia/new", foia_create, methods=["POST"], name="foia_create"),
    Route("/foia/{request_id:int}", foia_detail, name="foia_detail"),
    Route("/foia/{request_id:int}/status", foia_status, methods=["POST"], name="foia_status"),
    Route("/foia/{request_id:int}/searches", foia_save_search, methods=["POST"], name="foia_save_search"),
    Route("/foia/{request_id:int}/review/{record_id:int}", foia_review, methods=["POST"], name="foia_review"),
    Route("/foia/{request_id:int}/reviews", foia_review_many, methods=["POST"], name="foia_review_many"),
    Route("/foia/{request_id:int}/redact/{record_id:int}", foia_redact, methods=["POST"], name="foia_redact"),
    Route("/foia/{request_id:int}/unredact/{redaction_id:int}", foia_unredact, methods=["POST"], name="foia_unredact"),
    Route("/foia/{request_id:int}/export", foia_export, methods=["POST"], name="foia_export"),
    Route("/foia/{request_id:int}/exports/{name}", foia_download, name="foia_download"),
]
nav = [("Records search", "records_search"), ("FOIA requests", "foia_list"), ("Activity reports", "records_report")]
