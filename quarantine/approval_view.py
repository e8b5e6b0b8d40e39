"""A held broadcast as an approver sees it: a summary, its text, its HTML made safe, its attachments.

The HTML is sanitised with nh3 (Ammonia): no scripts, no styles, no images or
other remote content, links marked noopener/noreferrer/nofollow. Nothing is
fetched when an approver looks at a message, and nothing in it can run in the
console.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import nh3

from milter.mail.message import Message

if TYPE_CHECKING:
    pass

EXCERPT_CHARS = 1200
TEXT_CHARS = 200_000  # the most text the console shows of one message
SAFE_TAGS = frozenset(nh3.ALLOWED_TAGS) - {"img", "area", "map"}
SAFE_ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items() if tag in SAFE_TAGS}


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Summary:
    header_from: str
    header_to: str
    subject: str
    date: str
    recipients: tuple[str, ...]
    size: int
    attachments: tuple[Attachment, ...]
    excerpt: str

    def attachment_words(self) -> str:
        if not self.attachments:
            return "none"
        return ", ".join(f"{a.name} ({size_words(a.size)})" for a in self.attachments)


def size_words(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.0f} KB"
    return f"{size / 1_000_000:.1f} MB"


def text_of(message: Message) -> str:
    """The message's text as the recipients read it: its plain text parts, else its HTML as text."""
    plain = [body.text for body in message.text_bodies if body.content_type == "text/plain"]
    texts = plain or [body.text for body in message.text_bodies]
    return "\n\n".join(texts).strip()[:TEXT_CHARS]


def summarise(message: Message) -> Summary:
    attachments = tuple(
        Attachment(part.filename or part.label, part.content_type, part.size) for part in message.attachments
    )
    text = text_of(message)
    excerpt = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
    return Summary(
        message.header("From") or message.envelope.mail_from,
        message.header("To") or "",
        message.subject,
        message.header("Date") or "",
        message.envelope.rcpt_to,
        message.size,
        attachments,
        excerpt,
    )


def safe_html(message: Message) -> str | None:
    """The last HTML body, sanitised for display inside a console page; None when there is none."""
    bodies = [body.html for body in message.text_bodies if body.html]
    if not bodies:
        return None
    return nh3.clean(
        bodies[-1][:TEXT_CHARS],
        tags=set(SAFE_TAGS),
        clean_content_tags={"script", "style", "title", "head"},
        attributes=SAFE_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
