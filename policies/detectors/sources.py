"""The located texts of a Message that detectors read: subject, bodies, and every extracted attachment text.

Uses the Message's shared views, so archive members (zip, 7z, tar) and
docx, xlsx, pdf, csv, html and txt are covered as far as the gateway can
read them. Inline PGP armour is ciphertext, not text, and is left out;
what surrounds it stays plain text and is read.
"""

from __future__ import annotations

import regex

from milter.message import Message
from policies.detectors.base import Text
from policies.detectors.wordlists import Wordlists

PGP_ARMOUR = regex.compile(r"-----BEGIN PGP MESSAGE-----.*?(?:-----END PGP MESSAGE-----|\Z)", regex.DOTALL)


def without_armour(text: str, timeout: float) -> str:
    if "-----BEGIN PGP MESSAGE-----" not in text:
        return text
    return PGP_ARMOUR.sub(" ", text, timeout=timeout)


def texts_of(message: Message, words: Wordlists, timeout: float, window: int = 60) -> list[Text]:
    def text(content: str, part: str, location: str) -> Text:
        return Text(without_armour(content, timeout), part, location, words, timeout, window)

    texts = [text(message.subject, "header", "the subject")] if message.subject else []
    texts += [text(body.text, body.path, "the message body") for body in message.text_bodies]
    names = {part.path: part.label for part in message.attachments}
    for item in message.attachment_texts:
        name = item.filename or item.path
        top = item.path.split("/", 1)[0]
        if "/" in item.path and top in names:
            name = f"{name} in {names[top]}"  # an archive member: say which attachment it came in
        for where, content in item.segments:
            texts.append(text(content, item.path, f"{name}, {where}" if where else name))
    return texts
