"""The approval note at the end of an approved broadcast, in the agencies' form.

    Sam Ortiz
    For: Dana Whitfield – Director of Public Works

It goes after the last line of the last text/plain part and before the end
of the last text/html part's body (names HTML-escaped), with milter/mail/edit.py,
so the MIME structure and every other byte stay as they were. A header
records who approved and when; any such header the sender wrote is removed
first, so it cannot be forged.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

from milter.kernel.db import as_utc
from milter.mail import edit

HEADER = "X-AUP-Approved-By"


@dataclass(frozen=True)
class Approval:
    sender_name: str  # the person who wrote the message
    for_name: str | None  # whose approval it is: the department head (also when a delegate clicks)
    for_title: str | None
    approver: str  # who decided, as the header names them: "Lee Park <lpark@example.gov>"
    capacity: str  # "department head", "delegate of Dana Whitfield", "fallback approver", "console admin"
    at: dt.datetime

    @property
    def lines(self) -> list[str]:
        if self.for_name is None:
            return [self.sender_name, "Approved by the agency's mail administrators"]
        title = f" – {self.for_title}" if self.for_title else ""
        return [self.sender_name, f"For: {self.for_name}{title}"]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def html(self) -> str:
        return "<p>" + "<br>\n".join(html.escape(line) for line in self.lines) + "</p>\n"

    @property
    def header_value(self) -> str:
        return f"{self.approver} ({self.capacity}); {as_utc(self.at):%Y-%m-%dT%H:%M:%SZ}"


def apply(raw: bytes, approval: Approval) -> bytes:
    """The message as it is delivered: the note at the end of its text and HTML, and the approval header."""
    noted = edit.edit_text(
        raw,
        lambda text: edit.append_to_text(text, approval.text),
        lambda markup: edit.append_to_html(markup, approval.html),
        which="last",
    )
    return edit.add_header(edit.remove_headers(noted, HEADER), HEADER, approval.header_value)


def has_text(raw: bytes) -> bool:
    """Whether the message has a text part for the note to go in."""
    return bool(edit.text_parts(raw))
