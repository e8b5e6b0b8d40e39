"""MIME views of a Message: parts, text bodies, true types, archive members, extracted text.

Every function here takes bounded time and memory (the `[limits]` caps) and
records what it could not inspect on the Message as a Problem.
"""

from __future__ import annotations

import email.policy
import time
from dataclasses import dataclass, field
from email.message import EmailMessage, Message as StdMessage
from email.parser import BytesParser
from functools import cached_property
from typing import TYPE_CHECKING

from milter import archives, extract
from milter.filetypes import FileType, true_type

if TYPE_CHECKING:
    from milter.message import Message, ProblemKind


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
    def is_attachment(self) -> bool:
        if self.disposition == "attachment" or self.filename:
            return True
        return self.content_type.split("/")[0] not in ("text", "multipart")

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
class Member:
    """A file inside an archive attachment (at any depth)."""

    path: str  # "2/outer.zip/inner.zip/run.js"
    name: str
    size: int
    depth: int
    encrypted: bool
    true_type: FileType | None  # None when the member could not be read
    data: bytes | None = field(default=None, repr=False, compare=False)  # kept while within the caps


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
STRUCTURAL_DEFECTS = frozenset({
    "NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect", "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect", "MissingHeaderBodySeparatorDefect",
    "InvalidMultipartContentTransferEncodingDefect", "FirstHeaderLineIsContinuationDefect",
    "MisplacedEnvelopeHeaderDefect",
})


def defect_kind(defect: object) -> ProblemKind:
    return "malformed" if type(defect).__name__ in STRUCTURAL_DEFECTS else "defect"


def parse(message: Message) -> EmailMessage:
    try:
        tree = BytesParser(policy=email.policy.default).parsebytes(message.raw)
    except RecursionError:
        message.problem("message", "cap", "MIME nesting is too deep to parse")
        return message.headers
    except Exception as exc:  # the parser is lenient; anything else is a bug in it, on hostile input
        message.problem("message", "malformed", f"the MIME structure cannot be parsed ({type(exc).__name__})")
        return message.headers
    for defect in tree.defects:
        message.problem("message", defect_kind(defect), type(defect).__name__)
    return tree  # type: ignore[return-value]


def walk(message: Message) -> list[Part]:
    limits = message.limits
    parts: list[Part] = []

    def visit(node: StdMessage, path: str, depth: int) -> None:
        if len(parts) >= limits.mime_parts:
            message.problem("message", "cap", f"more than {limits.mime_parts} MIME parts; the rest were not inspected")
            return
        if depth > limits.mime_nesting:
            message.problem(path, "cap", f"MIME nesting deeper than {limits.mime_nesting}; not inspected")
            return
        for defect in getattr(node, "defects", ()):
            message.problem(path or "message", defect_kind(defect), type(defect).__name__)
        if node.is_multipart():
            children = node.get_payload()
            if not isinstance(children, list):
                message.problem(path or "message", "malformed", "a multipart part without parts")
                return
            for index, child in enumerate(children, start=1):
                visit(child, f"{path}.{index}" if path else str(index), depth + 1)
            return
        parts.append(_leaf(message, node, path or "1"))

    visit(message.tree, "", 0)
    return parts


def _leaf(message: Message, node: StdMessage, path: str) -> Part:
    content_type = node.get_content_type()
    try:
        filename = node.get_filename()
    except Exception:
        filename = None
        message.problem(path, "malformed", "the file name cannot be decoded")
    if content_type == "message/rfc822":
        payload = _inner_message_bytes(message, node, path)
    else:
        try:
            payload = node.get_payload(decode=True) or b""
        except Exception as exc:
            message.problem(path, "corrupt", f"the transfer encoding cannot be decoded ({type(exc).__name__})")
            payload = b""
    disposition = node.get_content_disposition()
    content_id = node.get("Content-ID")
    return Part(path, content_type, filename, disposition, node.get_content_charset(), payload,
                str(content_id) if content_id else None)


def _inner_message_bytes(message: Message, node: StdMessage, path: str) -> bytes:
    # An attached message is inspected as a file; these bytes are never forwarded.
    inner = node.get_payload()
    try:
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
        return str(inner).encode("utf-8", "surrogateescape")
    except Exception as exc:
        message.problem(path, "malformed", f"the attached message cannot be read ({type(exc).__name__})")
        return b""


def text_bodies(message: Message) -> list[TextBody]:
    bodies = []
    for part in message.parts:
        if part.is_attachment or part.content_type not in ("text/plain", "text/html"):
            continue
        text = decode_text(message, part)
        if part.content_type == "text/html":
            bodies.append(TextBody(part.path, part.content_type, extract.html_to_text(text), text))
        else:
            bodies.append(TextBody(part.path, part.content_type, text))
    return bodies


def decode_text(message: Message, part: Part) -> str:
    charset = part.charset or "utf-8"
    try:
        return part.payload.decode(charset, errors="replace")
    except LookupError:
        message.problem(part.path, "malformed", f"unknown charset {charset!r}; read as UTF-8")
        return part.payload.decode("utf-8", errors="replace")


def archive_members(message: Message) -> list[Member]:
    budget = archives.Budget(message.limits)
    members: list[Member] = []
    for part in message.attachments:
        if archives.is_archive(part.true_type):
            for item in archives.walk(part.payload, part.path, part.label, part.true_type, budget):
                if isinstance(item, archives.Trouble):
                    message.problem(item.where, item.kind, item.detail)
                else:
                    members.append(Member(item.path, item.name, item.size, item.depth, item.encrypted,
                                          item.true_type, item.data))
    return members


def extracted_texts(message: Message) -> list[ExtractedText]:
    limits = message.limits
    texts = []
    for part in message.attachments:
        started = time.monotonic()
        result = extract.extract(part.payload, part.true_type, part.filename, limits)
        for kind, detail in result.problems:
            message.problem(part.path, kind, f"{part.label}: {detail}")
        if result.segments:
            texts.append(ExtractedText(part.path, part.filename, tuple(result.segments)))
        if time.monotonic() - started > limits.extract_time:
            message.problem(part.path, "cap", f"{part.label}: text extraction ran over {limits.extract_time:g}s")
    for member in message.archive_members:
        if member.data is None or member.true_type is None or archives.is_archive(member.true_type):
            continue
        result = extract.extract(member.data, member.true_type, member.name, limits)
        for kind, detail in result.problems:
            message.problem(member.path, kind, f"{member.name}: {detail}")
        if result.segments:
            texts.append(ExtractedText(member.path, member.name, tuple(result.segments)))
    return texts
