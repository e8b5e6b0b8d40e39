"""The Message: envelope, raw bytes, and views computed once and shared.

Policies read a Message; they never change it. The raw bytes are what is
stored and forwarded: a parsed view is never serialised back. Anything that
could not be inspected (a cap hit, a corrupt part, an encrypted member) is
recorded in `problems` instead of being swallowed, so the pipeline can hold
the message for IT.
"""

from __future__ import annotations

import email.policy
import email.utils
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cached_property
from typing import Literal

import regex

from milter import content
from milter.directory import normalise_address
from milter.settings import LimitSettings

Direction = Literal["inbound", "outbound", "internal"]
# "defect" is cosmetic (the content was still read); the others mean something went uninspected.
ProblemKind = Literal["malformed", "cap", "encrypted", "corrupt", "unsupported", "defect"]

_LINE_ENDINGS = regex.compile(rb"\r\n|\r|\n")
_HEADER_END = regex.compile(rb"\r\n\r\n")


def new_message_id() -> str:
    """A sortable queue id: milliseconds since the epoch and 40 random bits."""
    return f"{int(time.time() * 1000):011x}{secrets.token_hex(5)}".upper()


def normalise_line_endings(data: bytes) -> tuple[bytes, list[str]]:
    """CRLF everywhere, no NUL: what reaches the downstream can never end DATA early.

    Bare CR or LF and NUL are how SMTP smuggling hides a second message; after
    this no line ending other than CRLF exists and no NUL can hide a dot line.
    """
    notes = []
    if b"\x00" in data:
        notes.append("NUL bytes removed")
        data = data.replace(b"\x00", b"")
    fixed = _LINE_ENDINGS.sub(b"\r\n", data)
    if fixed != data:
        notes.append("bare CR or LF normalised to CRLF")
    return fixed, notes


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" is the null sender
    rcpt_to: tuple[str, ...]
    client_ip: str = "127.0.0.1"
    helo: str = ""
    auth_user: str | None = None
    tls: bool = False
    trusted: bool = False  # the client is in smtp.trusted_networks

    @property
    def inside(self) -> bool:
        """Sent from inside the agency: a trusted mail server or an authenticated user."""
        return self.trusted or self.auth_user is not None


@dataclass(frozen=True)
class Problem:
    """Something the gateway could not inspect, and why."""

    where: str  # "message", a part path such as "2.1", or "2.1/archive.zip/x.doc"
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass
class Message:
    envelope: Envelope
    raw: bytes
    direction: Direction
    limits: LimitSettings = field(default_factory=LimitSettings)
    id: str = field(default_factory=new_message_id)
    received_at: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)  # harmless fixes made on receipt
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Views are computed on first use by whichever rule asks; rules may run
        # in different threads, so each view is computed under one lock.
        self._lock = threading.RLock()

    def problem(self, where: str, kind: ProblemKind, detail: str) -> None:
        problem = Problem(where, kind, detail)
        if problem not in self.problems:
            self.problems.append(problem)

    # -- headers -----------------------------------------------------------

    @cached_property
    def header_bytes(self) -> bytes:
        match = _HEADER_END.search(self.raw)
        return self.raw[: match.end()] if match else self.raw

    @cached_property
    def headers(self) -> EmailMessage:
        with self._lock:
            parsed = BytesParser(policy=email.policy.default).parsebytes(self.header_bytes, headersonly=True)
            for defect in parsed.defects:
                self.problem("message", content.defect_kind(defect), f"header: {type(defect).__name__}")
            return parsed  # type: ignore[return-value]

    def header(self, name: str) -> str | None:
        """One header as text, or None; a header that cannot be decoded is a problem, not a crash."""
        try:
            value = self.headers.get(name)
        except Exception as exc:  # the email package raises many kinds on hostile input
            self.problem("message", "malformed", f"{name} header cannot be parsed ({type(exc).__name__})")
            raw = self.headers.get_all(name, failobj=[])
            return str(raw[0]) if raw else None
        return None if value is None else str(value)

    def header_count(self, name: str) -> int:
        return len(self.headers.get_all(name, failobj=[]))

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name, address) pairs from an address header, lower-cased addresses."""
        values = self.headers.get_all(name, failobj=[])
        pairs: list[tuple[str, str]] = []
        for value in values:
            try:
                found = [(a.display_name, a.addr_spec) for a in getattr(value, "addresses", ())]
            except Exception:
                found = []
            if not found:  # the strict parser gave up: fall back to the lenient one
                found = [pair for pair in email.utils.getaddresses([str(value)]) if any(pair)]
            pairs.extend((display, normalise_address(addr)) for display, addr in found)
        return pairs

    @cached_property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @cached_property
    def from_addresses(self) -> list[tuple[str, str]]:
        return self.addresses("From")

    @property
    def size(self) -> int:
        return len(self.raw)

    # -- MIME views (see milter/content.py) ----------------------------------

    @cached_property
    def tree(self) -> EmailMessage:
        with self._lock:
            return content.parse(self)

    @cached_property
    def parts(self) -> list[content.Part]:
        with self._lock:
            return content.walk(self)

    @cached_property
    def text_bodies(self) -> list[content.TextBody]:
        with self._lock:
            return content.text_bodies(self)

    @cached_property
    def body_text(self) -> str:
        return "\n\n".join(body.text for body in self.text_bodies)

    @cached_property
    def attachments(self) -> list[content.Part]:
        return [part for part in self.parts if part.is_attachment]

    @cached_property
    def archive_members(self) -> list[content.Member]:
        with self._lock:
            return content.archive_members(self)

    @cached_property
    def attachment_texts(self) -> list[content.ExtractedText]:
        with self._lock:
            return content.extracted_texts(self)

    @cached_property
    def all_text(self) -> str:
        """Subject, bodies and every extracted attachment text, for word rules."""
        return "\n\n".join([self.subject, self.body_text, *(item.text for item in self.attachment_texts)])


def address_of(addr: Address | str) -> str:
    return normalise_address(addr.addr_spec if isinstance(addr, Address) else addr)
