"""The located texts of a Message that detectors read: subject, bodies, and every extracted attachment text.

Uses the Message's shared views, so archive members (zip, 7z, tar) and
docx, xlsx, pdf, csv, html and txt are covered as far as the gateway can
read them. Inline PGP armour is ciphertext, not text, and is left out;
what surrounds it stays plain text and is read.

The segments, with their words and numbers (tokens.py), are prepared once
per message and kept on it (`message.derived("readable_segments", ...)`),
so another rule that reads every text of a message gets them for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from milter.mail.message import Message
from policies.detectors.base import Text
from policies.detectors.tokens import Tokens
from policies.detectors.wordlists import Wordlists

PGP_ARMOUR = regex.compile(r"-----BEGIN PGP MESSAGE-----.*?(?:-----END PGP MESSAGE-----|\Z)", regex.DOTALL)
SHARED_KEY = "readable_segments"  # the Message.derived key other rules can read the segments by


@dataclass(frozen=True)
class Segment:
    """One readable text of a message (armour left out), where it is, and its words and numbers."""

    content: str
    part: str
    location: str
    tokens: Tokens


def without_armour(text: str, timeout: float) -> str:
    if "-----BEGIN PGP MESSAGE-----" not in text:
        return text
    return PGP_ARMOUR.sub(" ", text, timeout=timeout)


def segments(message: Message, timeout: float) -> list[Segment]:
    """Every readable text of the message, prepared once per message and shared by every rule that asks."""
    return message.derived(SHARED_KEY, lambda m: _segments(m, timeout))


def texts_of(message: Message, words: Wordlists, timeout: float, window: int = 60) -> list[Text]:
    return [
        Text(segment.content, segment.part, segment.location, words, timeout, window, tokens=segment.tokens)
        for segment in segments(message, timeout)
    ]


def _segments(message: Message, timeout: float) -> list[Segment]:
    def segment(content: str, part: str, location: str) -> Segment:
        readable = without_armour(content, timeout)
        return Segment(readable, part, location, Tokens.of(readable, timeout))

    found = [segment(message.subject, "header", "the subject")] if message.subject else []
    found += [segment(body.text, body.path, "the message body") for body in message.text_bodies]
    names = {part.path: part.label for part in message.attachments}
    for item in message.attachment_texts:
        name = item.filename or item.path
        top = item.path.split("/", 1)[0]
        if "/" in item.path and top in names:
            name = f"{name} in {names[top]}"  # an archive member: say which attachment it came in
        for where, content in item.segments:
            found.append(segment(content, item.path, f"{name}, {where}" if where else name))
    return found
