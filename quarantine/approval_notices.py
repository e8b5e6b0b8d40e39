"""What the approval queue tells people, and how each notice is made ready to send.

Every notice says what happened, which rule, and what to do next. The sender
hears at once that the message is held and who decides, and later the
outcome (with the approver's reason on rejection). Approvers get the
message's summary and two signed links; reminders and escalations the same.
Notices are composed and their bytes stored before the transaction that
queues them (`prepare`), so that transaction only inserts (`Prepared.queue`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from milter.mail.message import Message
from quarantine.approval_view import Summary, size_words

if TYPE_CHECKING:
    from milter.runtime import Runtime

RULE = "broadcast"
POLICY = (
    "Agency policy: e-mail to all employees or large groups of employees, and requests to colleagues for a "
    "charitable purpose, need the prior approval of the sender's department head"
)


@dataclass(frozen=True)
class Prepared:
    """A notice whose bytes are stored; `queue` archives it and hands it to the deliver queue."""

    message: Message
    digest: str
    to: tuple[str, ...]
    subject: str

    def queue(self, connection: Connection) -> None:
        from milter.intake import (
            accept,  # accept imports the approval intake, which imports this module
        )

        accept.record_generated(connection, self.message, self.digest, "notice")


def prepare(
    runtime: Runtime, to: list[str] | tuple[str, ...], subject: str, text: str, html_body: str, kind: str
) -> Prepared:
    from milter.intake import accept
    from quarantine import notices

    settings = runtime.config.settings
    data = notices.compose(
        settings.notices, to, subject, text, html=html_body, kind=kind, hostname=settings.smtp.hostname
    )
    message = accept.generated_message(runtime, data, settings.notices.bounce_address, to)
    return Prepared(message, runtime.blobs.put(message.raw), tuple(to), subject)


@dataclass(frozen=True)
class About:
    """The held message, in the words every notice about it uses."""

    message_id: str
    sender_name: str
    sender_address: str
    sender_title: str  # "Maintenance Supervisor, Public Works", or ""
    reach: str  # "All Staff (all-staff@example.gov)"
    summary: Summary
    reason: str
    decides: str  # "Dana Whitfield (Director of Public Works) or Lee Park (Deputy Director of Public Works)"
    expires_text: str  # when it is rejected if nobody decides
    console_url: str
    it_contact: str

    @property
    def subject_quote(self) -> str:
        subject = " ".join(self.summary.subject.split()) or "(no subject)"
        return f"“{subject[:120]}”"

    @property
    def sender_words(self) -> str:
        return f"{self.sender_name} ({self.sender_title})" if self.sender_title else self.sender_name


def _summary_rows(about: About) -> list[tuple[str, str]]:
    summary = about.summary
    return [
        ("From", summary.header_from),
        ("To", summary.header_to or ", ".join(summary.recipients)),
        ("Reaches", about.reach),
        ("Subject", summary.subject or "(no subject)"),
        ("Date", summary.date),
        ("Size", size_words(summary.size)),
        ("Attachments", summary.attachment_words()),
    ]


def _text_summary(about: About) -> str:
    rows = _summary_rows(about)
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"  {label + ':':<{width}} {value}" for label, value in rows]
    excerpt = (
        "\n".join(f"  > {line}" for line in about.summary.excerpt.splitlines()[:25]) or "  (the message has no text)"
    )
    return "\n".join(lines) + "\n\nThe beginning of the message:\n" + excerpt


def _html_summary(about: About) -> str:
    rows = "".join(
        f'<tr><th align="left">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>'
        for label, value in _summary_rows(about)
    )
    excerpt = html.escape(about.summary.excerpt) or "(the message has no text)"
    return f"<table>{rows}</table>\n<p>The beginning of the message:</p>\n<blockquote><pre>{excerpt}</pre></blockquote>"


def _html(paragraphs: list[str], middle: str = "") -> str:
    body = "".join(f"<p>{p}</p>\n" for p in paragraphs[:1]) + middle + "".join(f"<p>{p}</p>\n" for p in paragraphs[1:])
    return f"<html><body>\n{body}</body></html>\n"


# -- to the sender -----------------------------------------------------------


def held(about: About, note: str) -> tuple[str, str, str]:
    subject = f"Your message {about.subject_quote} is waiting for approval"
    first = (
        f"Your message {about.subject_quote} to {about.reach} has not been sent yet. {POLICY} "
        f"(rule {RULE}). It is held for approval by {about.decides}."
    )
    rest = [
        (
            "You do not need to do anything or send it again. When it is approved it is delivered as you wrote it, "
            "with this note added at the end:"
        ),
        note,
        (
            f"You will get an e-mail with the decision; if it is rejected, the e-mail gives the reason. If nobody decides "
            f"by {about.expires_text}, the message is rejected and you are told. To speed things up, talk to the approver."
        ),
        f"Questions: {about.it_contact}.",
    ]
    text = "\n\n".join([first, *rest[:1], _indent(note), *rest[2:]]) + "\n"
    paragraphs = [
        html.escape(first),
        html.escape(rest[0]),
        "<br>".join(html.escape(line) for line in note.splitlines()),
        *(html.escape(p) for p in rest[2:]),
    ]
    return subject, text, _html(paragraphs)


def approved(about: About, approver_words: str, note: str, it_review: bool) -> tuple[str, str, str]:
    if it_review:
        subject = f"Your message {about.subject_quote} was approved and now waits for IT review"
        first = (
            f"{approver_words} approved your message {about.subject_quote} to {about.reach}. Other rules also asked "
            f"for IT to review it before delivery, so it now waits for IT; they will release it or tell you why not."
        )
    else:
        subject = f"Your message {about.subject_quote} was approved and sent"
        first = f"{approver_words} approved your message {about.subject_quote}; it has been sent to {about.reach}."
    rest = f"This note was added at the end of it:\n\n{_indent(note)}\n\nQuestions: {about.it_contact}."
    text = f"{first}\n\n{rest}\n"
    paragraphs = [
        html.escape(first),
        "This note was added at the end of it:",
        "<br>".join(html.escape(line) for line in note.splitlines()),
        f"Questions: {html.escape(about.it_contact)}.",
    ]
    return subject, text, _html(paragraphs)


def rejected(about: About, approver_words: str, reason: str) -> tuple[str, str, str]:
    subject = f"Your message {about.subject_quote} was not approved"
    first = (
        f"{approver_words} did not approve your message {about.subject_quote} to {about.reach}, so it was not sent. "
        f"{POLICY} (rule {RULE})."
    )
    said = f"The reason given:\n\n{_indent(reason)}"
    after = (
        f"What to do next: change the message as asked and send it again (it will be held for approval again), "
        f"send it to a smaller group, or talk to {approver_words}. Questions: {about.it_contact}."
    )
    text = f"{first}\n\n{said}\n\n{after}\n"
    paragraphs = [
        html.escape(first),
        "The reason given:",
        f"<blockquote>{html.escape(reason)}</blockquote>",
        html.escape(after),
    ]
    return subject, text, _html(paragraphs)


def expired(about: About, days: int) -> tuple[str, str, str]:
    subject = f"Your message {about.subject_quote} was not sent: nobody approved it in time"
    first = (
        f"Your message {about.subject_quote} to {about.reach} waited {days} business days for approval by "
        f"{about.decides}, and nobody decided, so it was not sent (rule {RULE})."
    )
    after = (
        f"What to do next: if it is still needed, ask your department head to expect it and send it again; it will "
        f"be held for approval again. Questions: {about.it_contact}."
    )
    text = f"{first}\n\n{after}\n"
    return subject, text, _html([html.escape(first), html.escape(after)])


# -- to the approvers --------------------------------------------------------

KIND_SUBJECT = {
    "request": "Approval needed",
    "fallback": "Approval needed",
    "reminder": "Reminder: approval needed",
    "escalation": "Approval needed (escalated)",
}


def request(
    about: About,
    *,
    kind: str,
    approver_name: str,
    approve_url: str,
    reject_url: str,
    link_expires: str,
    note: str,
    schedule: str,
    waited: str | None = None,
) -> tuple[str, str, str]:
    subject = f"{KIND_SUBJECT[kind]}: {about.subject_quote} from {about.sender_name} to {about.reach}"
    opening = {
        "request": f"{about.sender_words} sent a message to {about.reach}. {POLICY} (rule {RULE}), so it is held until "
        f"you, {approver_name}, or another approver decides.",
        "fallback": f"{about.sender_words} sent a message to {about.reach}. {POLICY} (rule {RULE}), but no head or "
        f"delegate of the sender's department is on file who could approve it, so it comes to you as the "
        f"agency's fallback approver.",
        "reminder": f"A message from {about.sender_words} to {about.reach} is still waiting for your decision. {POLICY} "
        f"(rule {RULE}).",
        "escalation": f"A message from {about.sender_words} to {about.reach} has waited {waited or 'too long'} for "
        f"its department's approvers. {POLICY} (rule {RULE}); as the agency's fallback approver you may "
        f"now decide it too.",
    }[kind]
    why = f"Why it was held: {about.reason}"
    approve_words = "Approve it (the message is delivered with this note added at the end):"
    reject_words = "Reject it (you will be asked for a reason, which is sent to the sender):"
    after = (
        f"Each link opens a page where you confirm; nothing happens until you press the button there. The links "
        f"work only for you, once, until {link_expires}. You can also decide in the console: {about.console_url}"
    )
    text = (
        "\n\n".join(
            [
                opening,
                _text_summary(about),
                why,
                f"{approve_words}\n\n{_indent(note)}\n\n  {approve_url}",
                f"{reject_words}\n\n  {reject_url}",
                after,
                schedule,
            ]
        )
        + "\n"
    )
    middle = (
        f"{_html_summary(about)}\n<p>{html.escape(why)}</p>\n"
        f'<p><a href="{html.escape(approve_url)}"><strong>Approve</strong></a> – the message is delivered with this '
        f"note added at the end:<br>{'<br>'.join(html.escape(line) for line in note.splitlines())}</p>\n"
        f'<p><a href="{html.escape(reject_url)}"><strong>Reject</strong></a> – you will be asked for a reason, which '
        f"is sent to the sender.</p>\n"
    )
    after_html = html.escape(after).replace(
        html.escape(about.console_url),
        f'<a href="{html.escape(about.console_url)}">{html.escape(about.console_url)}</a>',
    )
    return subject, text, _html([html.escape(opening), after_html, html.escape(schedule)], middle)


def nobody(about: About) -> tuple[str, str, str]:
    """To the mail administrators when no one on file may approve: the message must not wait unseen."""
    subject = f"No approver on file: {about.subject_quote} from {about.sender_name} waits for approval"
    first = (
        f"A message from {about.sender_words} to {about.reach} is held for approval (rule {RULE}), but no one on "
        f"file may approve it: the sender has no department head or delegate other than themselves, and "
        f"[approvals] fallback_approvers names no one else."
    )
    after = (
        f"Decide it in the console as an admin ({about.console_url}) or with `aup-milter approvals approve|reject "
        f"{about.message_id}`, and set [approvals] fallback_approvers or the department's head in the directory. If "
        f"nobody decides by {about.expires_text}, it is rejected."
    )
    text = f"{first}\n\n{_text_summary(about)}\n\n{after}\n"
    return subject, text, _html([html.escape(first), html.escape(after)], _html_summary(about))


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
