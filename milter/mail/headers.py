"""Header values for archiving and indexing, read the fast way.

The email package's modern header parser costs about half a millisecond per
address header, which would be most of the time of a bulk import or of the
indexer. Here encoded words are decoded with `email.header` and addresses
read with `email.utils.getaddresses` (a regular expression), only on the
values the archive keeps. Both are lenient: a value they cannot decode is
kept as sent.
"""

from __future__ import annotations

import contextlib
import email.header
import email.utils

import regex

from milter.kernel.directory import normalise_address
from milter.mail.message import Message, legacy_8bit

_FOLD = regex.compile(r"\r?\n[ \t]*")


def text(message: Message, name: str) -> str | None:
    """The first value of a header as text, encoded words decoded."""
    values = message.raw_header_values(name)
    if not values:
        return None
    value = _FOLD.sub(" ", legacy_8bit(values[0])).strip()
    if "=?" in value:
        with contextlib.suppress(Exception):  # an unknown charset or a broken encoded word: keep it as sent
            value = str(email.header.make_header(email.header.decode_header(value)))
    return value


def addresses(message: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs from these address headers; group syntax names none."""
    values = [_FOLD.sub(" ", value) for name in names for value in message.raw_header_values(name)]
    return [
        (display, normalise_address(address)) for display, address in email.utils.getaddresses(values) if "@" in address
    ]
