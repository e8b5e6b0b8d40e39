"""A message as plain text for review, and its redacted copy as a standalone HTML page.

The rendering is built from decoded text only (headers, bodies, attachment
text), so a redacted copy is a new document: the original bytes, markup,
attachments and hidden text never travel with it, and a blacked-out span is
gone from the file, not covered over. Redaction offsets refer to
`rendered_text`, which is the same for the same message every time.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import regex

from milter.mail.message import Message

HEADERS = ("From", "To", "Cc", "Date", "Subject")
MAX_TEXT = 2_000_000  # characters of one rendering


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    reason: str


def rendered_text(message: Message) -> str:
    """Headers, bodies and attachment text in reading order; what a reviewer reads and redacts."""
    lines = [f"{name}: {message.header(name)}" for name in HEADERS if message.header(name)]
    parts = ["\n".join(lines)]
    if message.body_text.strip():
        parts.append(message.body_text.strip())
    texts = {item.path: item for item in message.attachment_texts}
    for attachment in message.attachments:
        if attachment.is_inline_image or attachment.content_type.startswith("message/"):
            continue
        label = attachment.filename or f"part {attachment.path}"
        item = texts.get(attachment.path)
        if item is None:
            parts.append(f"[Attachment: {label} ({attachment.content_type}, {attachment.size} bytes); no text shown]")
        else:
            parts.append(
                f"[Attachment: {label}]\n"
                + "\n".join(f"{where}: {text}" if where else text for where, text in item.segments)
            )
    for path, item in texts.items():  # text from inside archives (zip members)
        if "/" in path:
            parts.append(f"[Archive member: {item.filename or path}]\n{item.text}")
    return "\n\n".join(parts)[:MAX_TEXT]


def spans_for(text: str, redactions: list[dict[str, Any]]) -> list[Span]:
    """Where each redaction falls: every occurrence of its text (any case, any spacing), or its offsets."""
    spans = []
    for redaction in redactions:
        reason = redaction.get("reason") or "redacted"
        if redaction.get("text") and redaction["text"].split():
            pattern = r"\s+".join(regex.escape(word) for word in redaction["text"].split())
            spans += [
                Span(m.start(), m.end(), reason) for m in regex.finditer(pattern, text, regex.IGNORECASE, timeout=10)
            ]
        elif redaction.get("start") is not None and redaction.get("end") is not None:
            start, end = max(int(redaction["start"]), 0), min(int(redaction["end"]), len(text))
            if start < end:
                spans.append(Span(start, end, reason))
    return _merged(spans)


def _merged(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and span.start <= merged[-1].end:
            last = merged[-1]
            reasons = last.reason if span.reason in last.reason.split(", ") else f"{last.reason}, {span.reason}"
            merged[-1] = Span(last.start, max(last.end, span.end), reasons)
        else:
            merged.append(span)
    return merged


def redacted_pieces(text: str, spans: list[Span]) -> list[tuple[str, str | None]]:
    """The text cut into (kept text, None) and ("", reason) pieces; redacted text is dropped here."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for span in spans:
        if span.start > position:
            pieces.append((text[position : span.start], None))
        pieces.append(("", span.reason))
        position = span.end
    if position < len(text):
        pieces.append((text[position:], None))
    return pieces


def redacted_html(text: str, spans: list[Span], *, title: str, notice: str) -> str:
    """A standalone page (inline style, no scripts, no links) with each span replaced by a labelled black bar."""
    body = "".join(
        html.escape(kept) if reason is None else f'<span class="redacted">REDACTED {html.escape(reason)}</span>'
        for kept, reason in redacted_pieces(text, spans)
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<style>body{font:15px/1.5 sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}"
        "pre{white-space:pre-wrap;word-wrap:break-word;font:14px/1.5 monospace}"
        ".redacted{background:#000;color:#fff;padding:0 .3em;font:bold 12px sans-serif}"
        ".notice{border:1px solid #999;padding:.5rem 1rem;background:#f4f4f4}</style></head>\n"
        f'<body><h1>{html.escape(title)}</h1><p class="notice">{html.escape(notice)}</p>\n<pre>{body}</pre></body></html>\n'
    )
