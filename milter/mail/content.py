"""MIME views of a Message: parts, text bodies, true types, archive members, extracted text.

Every function here takes bounded time and memory (the `[limits]` caps) and
records what it could not inspect on the Message as a Problem.
"""

from __future__ import annotations

import contextlib
import email.header
import email.policy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.feedparser import BytesFeedParser
from email.message import Message as StdMessage
from functools import cached_property
from typing import TYPE_CHECKING, cast

from milter.mail import containers, extract
from milter.mail.filetypes import FileType, true_type

if TYPE_CHECKING:
    from milter.mail.message import Message, ProblemKind

Member = containers.Entry  # a file inside an archive attachment, at any depth

FEED_BYTES = 2048  # the parser is fed this much at a time, so nesting is checked before it runs deep
BODY_TYPES = ("text/plain", "text/html")
TEXT_TOTAL_FACTOR = 5  # one message's attachments yield at most 5 x extract_chars characters ...
TEXT_TIME_FACTOR = 2  # ... in at most 2 x extract_time seconds
HTML_SOURCE_FACTOR = 4  # an HTML body is read up to 4 x extract_chars characters of markup
_KNOWN_ENCODINGS = {
    "",
    "7bit",
    "8bit",
    "binary",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "uuencode",
    "uue",
    "x-uue",
}
_SERIALISE = email.policy.compat32.clone(linesep="\r\n")  # compat32 writes header values back as they came


@dataclass
class Part:
    """One leaf of the MIME tree, with its transfer encoding undone."""

    path: str  # "1", "2.1": the position in the tree, as IMAP numbers parts
    content_type: str
    filename: str | None
    disposition: str | None
    charset: str | None
    payload: bytes
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.payload)

    @property
    def is_body(self) -> bool:
        """Text the sender wrote in the message itself, not a file; everything else is inspected as a file."""
        return self.content_type in BODY_TYPES and self.disposition != "attachment" and not self.filename

    @property
    def is_attachment(self) -> bool:
        # Inline images, attached messages and text of other types (text/javascript) are files too.
        return not self.is_body

    @property
    def is_inline_image(self) -> bool:
        return self.content_type.startswith("image/") and self.disposition != "attachment"

    @property
    def label(self) -> str:
        return self.filename or f"part {self.path} ({self.content_type})"

    @cached_property
    def true_type(self) -> FileType:
        return true_type(self.payload, self.filename)


@dataclass(frozen=True)
class TextBody:
    path: str
    content_type: str  # text/plain or text/html
    text: str  # HTML already turned into text
    html: str | None = None  # the HTML source, for rules that need markup


@dataclass(frozen=True)
class ExtractedText:
    """Text found in one attachment or member, in located segments."""

    path: str
    filename: str | None
    segments: tuple[tuple[str, str], ...]  # (location such as "sheet Payroll" or "page 3", text)

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.segments)


# Defects after which the parser may have put content in the wrong place; the
# others (a stray header, odd base64 padding) leave everything readable.
STRUCTURAL_DEFECTS = frozenset(
    {
        "NoBoundaryInMultipartDefect",
        "StartBoundaryNotFoundDefect",
        "CloseBoundaryNotFoundDefect",
        "MultipartInvariantViolationDefect",
        "MissingHeaderBodySeparatorDefect",
        "InvalidMultipartContentTransferEncodingDefect",
        "FirstHeaderLineIsContinuationDefect",
        "MisplacedEnvelopeHeaderDefect",
    }
)
# Defects after which content was not decoded at all.
CORRUPTING_DEFECTS = frozenset({"InvalidBase64LengthDefect"})


def defect_kind(defect: object) -> ProblemKind:
    name = type(defect).__name__
    if name in CORRUPTING_DEFECTS:
        return "corrupt"
    return "malformed" if name in STRUCTURAL_DEFECTS else "defect"


def _record_defects(message: Message, where: str, defects: Sequence[object]) -> None:
    for defect in defects:
        message.problem(where, defect_kind(defect), type(defect).__name__)


class _CountingFactory:
    """Makes the parser's part objects and counts them (FeedParser's documented _factory hook)."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, policy: email.policy.Policy = email.policy.compat32) -> StdMessage:
        self.made += 1
        return StdMessage(policy)


def parse(message: Message) -> StdMessage:
    """The MIME tree, parsed no deeper and no wider than the caps.

    The email package checks every line against every open boundary, so a
    nesting bomb costs lines x depth, and past about 400 levels it recurses
    too deep; a million empty parts cost a million objects. The parser is fed
    in small pieces and stopped once it is deeper or wider than the caps;
    what it read so far is inspected and the message held for IT.
    """
    limits = message.limits
    factory = _CountingFactory()
    parser = BytesFeedParser(factory, policy=email.policy.compat32)  # see milter.mail.message.STRUCTURE_POLICY
    raw = message.raw
    try:
        for start in range(0, len(raw), FEED_BYTES):
            parser.feed(raw[start : start + FEED_BYTES])
            # _msgstack holds the parts still open; there is no public way to ask how deep the parser is.
            if len(getattr(parser, "_msgstack", ())) > limits.mime_nesting + 1:
                message.problem(
                    "message",
                    "cap",
                    f"MIME nesting deeper than {limits.mime_nesting} levels; the parts below were not inspected",
                )
                break
            if factory.made > limits.mime_parts + 2:  # + the top message and the parser's trial call
                message.problem(
                    "message", "cap", f"more than {limits.mime_parts} MIME parts; the rest were not inspected"
                )
                break
        return parser.close()
    except RecursionError:
        message.problem("message", "cap", "MIME nesting is too deep to parse")
    except Exception as exc:  # the parser is lenient; anything else is a bug in it, on hostile input
        message.problem("message", "malformed", f"the MIME structure cannot be parsed ({type(exc).__name__})")
    return message.headers


def walk(message: Message) -> list[Part]:
    """Every leaf (and every attached message) in IMAP order, within the part and nesting caps."""
    limits = message.limits
    parts: list[Part] = []
    seen = 0

    def visit(node: StdMessage, path: str, depth: int, is_message: bool) -> None:
        # path is this node's IMAP number ("" for the top message); is_message
        # says it is a whole message, whose only body is numbered path.1.
        nonlocal seen
        if depth > limits.mime_nesting:
            message.problem(path, "cap", f"MIME nesting deeper than {limits.mime_nesting} levels; not inspected")
            return
        seen += depth > 0
        if seen > limits.mime_parts:
            message.problem("message", "cap", f"more than {limits.mime_parts} MIME parts; the rest were not inspected")
            return
        where = path or "message"
        if node.is_multipart():
            _record_defects(message, where, node.defects)
            children: list[StdMessage] = node.get_payload()  # type: ignore[assignment] # a multipart's payload is its parts
            if node.get_content_maintype() != "message":
                for index, child in enumerate(children, start=1):
                    visit(child, _join(path, index), depth + 1, False)
            elif node.get_content_type() == "message/delivery-status":
                parts.append(_part(message, node, path, _serialise(message, children, path)))
            else:  # an attached message: a file in itself, and a message whose parts are inspected
                parts.append(_part(message, node, path, _serialise(message, children[:1], path)))
                if children:
                    visit(children[0], path, depth + 1, True)
            return
        leaf_path = _join(path, 1) if is_message else path
        parts.append(_leaf(message, node, leaf_path))
        _record_defects(
            message, where if is_message else leaf_path, node.defects
        )  # after decoding: it adds base64 defects

    visit(message.tree, "", 0, True)
    return parts


def _join(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def _leaf(message: Message, node: StdMessage, path: str) -> Part:
    try:
        encoding = str(node.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding not in _KNOWN_ENCODINGS:  # the email package then passes the bytes through as sent
            message.problem(path, "defect", f"unknown transfer encoding {encoding[:40]!r}; inspected as sent")
        payload = cast(bytes, node.get_payload(decode=True) or b"")
    except Exception as exc:
        message.problem(path, "corrupt", f"the transfer encoding cannot be decoded ({type(exc).__name__})")
        payload = b""
    return _part(message, node, path, payload)


def _part(message: Message, node: StdMessage, path: str, payload: bytes) -> Part:
    try:
        filename = _filename(node)
    except Exception:
        filename = None
        message.problem(path, "malformed", "the file name cannot be decoded")
    try:
        content_id = node.get("Content-ID")
        disposition = node.get_content_disposition()
        charset = node.get_content_charset()
    except Exception as exc:
        message.problem(path, "malformed", f"the part's headers cannot be parsed ({type(exc).__name__})")
        content_id = disposition = charset = None
    return Part(
        path, node.get_content_type(), filename, disposition, charset, payload, str(content_id) if content_id else None
    )


def _filename(node: StdMessage) -> str | None:
    """The file name, RFC 2231 or RFC 2047 encoded: the second is not standard, but Outlook and Gmail send it."""
    name = node.get_filename()
    if name and "=?" in name:
        with contextlib.suppress(Exception):  # an unknown charset or a broken encoded word: keep the name as sent
            name = str(email.header.make_header(email.header.decode_header(name)))
    return name


def _serialise(message: Message, nodes: list[StdMessage], path: str) -> bytes:
    # An attached message is inspected as a file; these bytes are never forwarded.
    try:
        return b"\r\n".join(node.as_bytes(policy=_SERIALISE) for node in nodes)
    except Exception as exc:
        message.problem(path, "malformed", f"the attached message cannot be read ({type(exc).__name__})")
        return b""


def text_bodies(message: Message) -> list[TextBody]:
    bodies = []
    for part in message.parts:
        if not part.is_body:
            continue
        text = decode_text(message, part)
        if part.content_type == "text/html":
            bodies.append(TextBody(part.path, part.content_type, _html_body_text(message, part.path, text), text))
        else:
            bodies.append(TextBody(part.path, part.content_type, text))
    return bodies


def _html_body_text(message: Message, path: str, html: str) -> str:
    limit = message.limits.extract_chars * HTML_SOURCE_FACTOR
    if len(html) > limit:  # a parse takes memory many times the HTML's size
        message.problem(path, "cap", f"an HTML body of more than {limit} characters; only the first {limit} were read")
        html = html[:limit]
    try:
        text, complete = extract.html_to_text(html)
    except Exception as exc:  # libxml2 is lenient; anything else is hostile input
        message.problem(path, "malformed", f"the HTML body cannot be read ({type(exc).__name__})")
        return ""
    if not complete:
        message.problem(path, "cap", "the HTML body is nested too deeply to read to the end; the rest was not read")
    return text


def decode_text(message: Message, part: Part) -> str:
    if part.charset:
        try:
            return part.payload.decode(part.charset, errors="replace")
        except Exception:  # unknown, or a codec that is not a text encoding (idna, rot13)
            message.problem(
                part.path, "defect", f"unknown charset {part.charset[:40]!r}; read as UTF-8 or Windows-1252"
            )
    return extract.decode(part.payload)


def archive_members(message: Message) -> list[Member]:
    budget = containers.Budget(message.limits)
    members: list[Member] = []
    for part in message.attachments:
        if not containers.is_archive(part.true_type):
            continue
        where = f"{part.path}/{part.filename}" if part.filename else part.path
        for item in containers.walk(part.payload, where, part.label, part.true_type, budget):
            if isinstance(item, containers.Trouble):
                message.problem(item.where, item.kind, item.detail)
                continue
            members.append(item)
            if item.encrypted:
                message.problem(item.path, "encrypted", f"{item.name}: encrypted; its contents cannot be inspected")
    return members


def extracted_texts(message: Message) -> list[ExtractedText]:
    """Text of every attachment and archive member, within one budget of characters and time per message."""
    limits = message.limits
    chars_left = limits.extract_chars * TEXT_TOTAL_FACTOR
    deadline = time.monotonic() + limits.extract_time * TEXT_TIME_FACTOR
    files: list[tuple[str, str | None, bytes | None, FileType | None]] = [
        (part.path, part.filename, part.payload, part.true_type) for part in message.attachments
    ]
    files += [
        (m.path, m.name, m.data, m.true_type)
        for m in message.archive_members
        if m.true_type is not None and not containers.is_archive(m.true_type)
    ]
    texts = []
    for path, name, data, ftype in files:
        if ftype is None or extract.kind_of(ftype) is None:
            continue
        label = name or path
        if data is None:
            message.problem(
                path, "cap", f"{label}: larger than {containers.KEEP_DATA_BYTES} bytes; its text was not read"
            )
            continue
        if chars_left <= 0 or time.monotonic() > deadline:
            message.problem(path, "cap", f"{label}: the message's text extraction budget was spent; not read")
            continue
        result = extract.extract(data, ftype, limits, max_chars=chars_left)
        for kind, detail in result.problems:
            message.problem(path, kind, f"{label}: {detail}")  # type: ignore[arg-type]
        if result.segments:
            texts.append(ExtractedText(path, name, tuple(result.segments)))
            chars_left -= result.chars
    return texts
