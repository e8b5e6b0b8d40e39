"""Changes to a message's bytes that leave every other byte as it was.

The gateway never re-serialises a parsed message. When it must change one
(an approval note at the end of the body, a warning banner at the top, an
Authentication-Results header), it finds the exact byte range of what it
changes — a header field, or the body of one text part — and splices the new
bytes in. A text part is decoded with its own transfer encoding and charset,
changed as text, and encoded back the same way; only when the new text cannot
be written that way (a dash in an us-ascii part) do that part's own
Content-Type charset or Content-Transfer-Encoding change, and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import Header
from email.message import Message as StdMessage
from email.parser import BytesHeaderParser
from email.policy import compat32

MAX_DEPTH = 20
_HEADER_END = re.compile(rb"\r\n\r\n|\n\n")
_FIELD_START = re.compile(rb"^(?=[^ \t\r\n])", re.MULTILINE)


def _split(raw: bytes, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """(end of the header block, start of the body) within raw[start:end]."""
    end = len(raw) if end is None else end
    for blank in (b"\r\n", b"\n"):  # no header fields at all: the part starts with its blank line
        if raw.startswith(blank, start):
            return start, start + len(blank)
    match = _HEADER_END.search(raw, start, end)
    if match is None:
        return end, end
    return match.start() + 2 if raw[match.start() : match.start() + 2] == b"\r\n" else match.start() + 1, match.end()


def _fields(block: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Each header field in a header block: (start, end, lower-case name), continuation lines included."""
    starts = [m.start() for m in _FIELD_START.finditer(block)]
    for index, start in enumerate(starts):
        stop = starts[index + 1] if index + 1 < len(starts) else len(block)
        name = block[start:stop].split(b":", 1)[0].strip().lower()
        yield start, stop, name


# -- header fields --------------------------------------------------------


def add_header(raw: bytes, name: str, value: str) -> bytes:
    """Put one field at the top of the message (where trace fields go)."""
    return format_field(name, value) + raw


def remove_headers(raw: bytes, name: str, unless: Callable[[str], bool] = lambda value: False) -> bytes:
    """Drop every top-level `name` field, except those whose value `unless` keeps."""
    header_end, _ = _split(raw)
    block = raw[:header_end]
    kept = bytearray()
    for start, stop, field_name in _fields(block):
        field = block[start:stop]
        if field_name == name.lower().encode() and not unless(
            field.split(b":", 1)[1].decode("utf-8", "replace").strip()
        ):
            continue
        kept += field
    return bytes(kept) + raw[header_end:]


def set_subject(raw: bytes, subject: str) -> bytes:
    """Replace the Subject field (or add one), encoded per RFC 2047 when it is not ASCII."""
    return format_field("Subject", subject) + remove_headers(raw, "Subject")


def format_field(name: str, value: str) -> bytes:
    if value.isascii():
        folded = Header(value, header_name=name, maxlinelen=78).encode(linesep="\r\n")
    else:
        folded = Header(value, "utf-8", header_name=name, maxlinelen=78).encode(linesep="\r\n")
    return f"{name}: {folded}\r\n".encode("ascii")


# -- text parts -----------------------------------------------------------


@dataclass(frozen=True)
class TextPart:
    """Where one inline text/plain or text/html part sits in the raw bytes."""

    header_start: int
    header_end: int
    body_start: int
    body_end: int
    subtype: str  # "plain" or "html"
    charset: str
    encoding: str  # content-transfer-encoding, lower-case


def text_parts(raw: bytes) -> list[TextPart]:
    """Inline text/plain and text/html parts, in order, at any depth (attachments excluded)."""
    found: list[TextPart] = []
    _walk(raw, 0, len(raw), found, 0)
    return found


def _walk(raw: bytes, start: int, end: int, found: list[TextPart], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    header_end, body_start = _split(raw, start, end)
    headers: StdMessage = BytesHeaderParser(policy=compat32).parsebytes(raw[start:header_end])
    maintype, subtype = headers.get_content_maintype(), headers.get_content_subtype()
    if maintype == "multipart":
        boundary = headers.get_boundary()
        if boundary:
            for child_start, child_end in _children(raw, body_start, end, boundary.encode("utf-8", "surrogateescape")):
                _walk(raw, child_start, child_end, found, depth + 1)
        return
    disposition = (headers.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if maintype != "text" or subtype not in ("plain", "html") or disposition == "attachment" or headers.get_filename():
        return
    found.append(
        TextPart(
            start,
            header_end,
            body_start,
            end,
            subtype,
            headers.get_content_charset() or "us-ascii",
            str(headers.get("Content-Transfer-Encoding") or "7bit").strip().lower(),
        )
    )


def _children(raw: bytes, body_start: int, end: int, boundary: bytes) -> Iterator[tuple[int, int]]:
    """The byte range of each part between the boundary lines of a multipart body."""
    delimiter = re.compile(rb"\n--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)")
    previous: int | None = None
    # Search from the line break before the body, so a body that opens with its first delimiter is found.
    for match in delimiter.finditer(raw, body_start - 1, end):
        if previous is not None:
            # The line break before a delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
            before = match.start() - 1 if raw[match.start() - 1 : match.start()] == b"\r" else match.start()
            yield previous, max(before, previous)
        if match.group(1):  # the closing delimiter
            return
        previous = match.end()


def _decode(body: bytes, part: TextPart) -> str:
    if part.encoding == "base64":
        data = base64.b64decode(body, validate=False)
    elif part.encoding == "quoted-printable":
        data = binascii.a2b_qp(body)
    else:
        data = body
    try:
        return data.decode(part.charset)
    except (LookupError, UnicodeDecodeError):
        return data.decode("utf-8", "surrogateescape")


def _encode(text: str, part: TextPart) -> tuple[bytes, str, str]:
    """The new body, and the charset and transfer encoding it needs."""
    charset = part.charset
    try:
        data = text.encode(charset, "surrogateescape")
    except (LookupError, UnicodeEncodeError):
        charset = "utf-8"
        data = text.encode("utf-8", "surrogateescape")
    encoding = part.encoding
    if encoding in ("7bit", "") and not data.isascii():
        encoding = "quoted-printable"
    if encoding == "base64":
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    elif encoding == "quoted-printable":
        encoded = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True).replace(b"\n", b"\r\n")
    else:
        encoded = data
    return encoded, charset, encoding


def _rewrite_part_headers(block: bytes, part: TextPart, charset: str, encoding: str) -> bytes:
    """Only when the part's own charset or transfer encoding had to change."""
    if charset != part.charset:
        content_type = f'text/{part.subtype}; charset="{charset}"'
        kept = [block[s:e] for s, e, name in _fields(block) if name != b"content-type"]
        for s, e, name in _fields(block):
            if name == b"content-type":  # keep the other parameters (format=flowed, delsp)
                params = [p.strip() for p in block[s:e].decode("latin-1").split(":", 1)[1].split(";")[1:]]
                extra = "".join(f"; {p}" for p in params if p and not p.lower().startswith("charset"))
                content_type += extra
        block = b"".join(kept) + f"Content-Type: {content_type}\r\n".encode("latin-1")
    if encoding != part.encoding:
        kept = [block[s:e] for s, e, name in _fields(block) if name != b"content-transfer-encoding"]
        block = b"".join(kept) + f"Content-Transfer-Encoding: {encoding}\r\n".encode("ascii")
    return block


def edit_text(
    raw: bytes, plain: Callable[[str], str] | None, html: Callable[[str], str] | None, which: str = "last"
) -> bytes:
    """Change the text of the first ("first"), last ("last") or every ("all") text/plain and text/html part."""
    parts = text_parts(raw)
    chosen: list[TextPart] = []
    for subtype, change in (("plain", plain), ("html", html)):
        if change is None:
            continue
        of_type = [p for p in parts if p.subtype == subtype]
        chosen += of_type if which == "all" else of_type[:1] if which == "first" else of_type[-1:]
    for part in sorted(chosen, key=lambda p: p.header_start, reverse=True):  # from the end: offsets stay valid
        change = plain if part.subtype == "plain" else html
        assert change is not None
        body, charset, encoding = _encode(change(_decode(raw[part.body_start : part.body_end], part)), part)
        block = raw[part.header_start : part.header_end]
        new_block = _rewrite_part_headers(block, part, charset, encoding)
        raw = (
            raw[: part.header_start] + new_block + raw[part.header_end : part.body_start] + body + raw[part.body_end :]
        )
    return raw


_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_HTML_CLOSE = re.compile(r"</html\s*>", re.IGNORECASE)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def append_to_html(html: str, fragment: str) -> str:
    """Insert before the last </body> (or </html>), else at the end."""
    for pattern in (_BODY_CLOSE, _HTML_CLOSE):
        matches = list(pattern.finditer(html))
        if matches:
            at = matches[-1].start()
            return html[:at] + fragment + html[at:]
    return html + fragment


def prepend_to_html(html: str, fragment: str) -> str:
    """Insert right after <body ...>, else at the start."""
    match = _BODY_OPEN.search(html)
    return html[: match.end()] + fragment + html[match.end() :] if match else fragment + html


def append_to_text(text: str, note: str) -> str:
    """A note on lines of its own after the last line of the text."""
    ending = "\r\n" if "\r\n" in text or not text else "\n"
    body = text.rstrip("\r\n")
    return f"{body}{ending}{ending}{note.replace(chr(10), ending)}{ending}"


def prepend_to_text(text: str, banner: str) -> str:
    ending = "\r\n" if "\r\n" in text or not text else "\n"
    return f"{banner.replace(chr(10), ending)}{ending}{ending}{text}"
