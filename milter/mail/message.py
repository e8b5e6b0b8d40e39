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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import Message as ParsedMessage
from email.parser import BytesParser
from typing import Any, Generic, Literal, TypeVar, overload

import regex

from milter.kernel.directory import normalise_address
from milter.mail import content
from milter.mail.settings import LimitSettings

Direction = Literal["inbound", "outbound", "internal"]
# "defect" is cosmetic (the content was still read); the others mean something went uninspected.
ProblemKind = Literal["malformed", "cap", "encrypted", "corrupt", "unsupported", "defect"]

_LINE_ENDINGS = regex.compile(rb"\r\n|\r|\n")
_HEADER_END = regex.compile(rb"\r\n\r\n")
_FOLD = regex.compile(r"\r?\n[ \t]*")
MAX_PROBLEMS = 200  # a hostile message can have a defect per line; past this one problem says so
T = TypeVar("T")
# compat32 keeps header values as the text sent and never raises on them, so
# one hostile header cannot stop the MIME structure from being read; values
# are decoded (RFC 2047, addresses) one at a time with the modern policy.
STRUCTURE_POLICY = email.policy.compat32
DECODE_POLICY = email.policy.default


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


_TOO_MANY_PROBLEMS = Problem("message", "cap", f"more than {MAX_PROBLEMS} problems; the rest were not recorded")


class view(Generic[T]):  # lower case: used like @cached_property
    """A Message view: computed on first use, exactly once, under the Message's lock.

    functools.cached_property does not promise that: on Python 3.12 two
    threads may both compute, and on 3.11 its lock is shared by every
    instance. Views use each other (parts needs tree needs headers), so the
    lock is re-entrant.
    """

    def __init__(self, compute: Callable[[Message], T]) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, message: None, owner: type) -> view[T]: ...
    @overload
    def __get__(self, message: Message, owner: type) -> T: ...

    def __get__(self, message: Message | None, owner: type) -> view[T] | T:
        if message is None:
            return self
        with message._lock:
            if self.name not in message.__dict__:
                message.__dict__[self.name] = self.compute(message)
            return message.__dict__[self.name]  # type: ignore[no-any-return]


class ResultKey(Generic[T]):
    """The typed name a rule publishes its result under, and the rules that require it read it by."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ResultKey({self.name!r})"


@dataclass
class Message:
    envelope: Envelope
    raw: bytes
    direction: Direction
    limits: LimitSettings = field(default_factory=LimitSettings)  # type: ignore[arg-type] # every field has a default
    id: str = field(default_factory=new_message_id)
    received_at: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)  # harmless fixes made on receipt
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Rules run in different threads; views and problems change under this lock.
        self._lock = threading.RLock()
        self._recorded = set(self.problems)
        self._derived: dict[str, Any] = {}
        self._results: dict[str, Any] = {}

    def derived(self, key: str, compute: Callable[[Message], T]) -> T:
        """A value another subsystem derives from this message (a fingerprint, a scan), computed once and shared."""
        with self._lock:
            if key not in self._derived:
                self._derived[key] = compute(self)
            return self._derived[key]  # type: ignore[no-any-return]

    def publish(self, key: ResultKey[T], value: T) -> None:
        """A rule's result for the rules that declare `requires` on it (see policies/base.py)."""
        with self._lock:
            self._results[key.name] = value

    def result(self, key: ResultKey[T]) -> T | None:
        """A published result; None when its rule did not run on this message (off, or not for this direction).

        Never cached: the pipeline runs a rule after the rules it requires, so
        asking early is a missing `requires`, not a reason to remember None.
        """
        with self._lock:
            return self._results.get(key.name)

    def problem(self, where: str, kind: ProblemKind, detail: str) -> None:
        problem = Problem(where, kind, detail)
        with self._lock:
            if problem in self._recorded:
                return
            if len(self.problems) >= MAX_PROBLEMS:
                problem = _TOO_MANY_PROBLEMS
                if problem in self._recorded:
                    return
            self._recorded.add(problem)
            self.problems.append(problem)

    # -- headers -----------------------------------------------------------

    @view
    def header_bytes(self) -> bytes:
        match = _HEADER_END.search(self.raw)
        return self.raw[: match.end()] if match else self.raw

    @view
    def headers(self) -> ParsedMessage:
        """The header as parsed, values as sent; use header() and addresses() for decoded values."""
        parsed = BytesParser(policy=STRUCTURE_POLICY).parsebytes(self.header_bytes, headersonly=True)
        for defect in parsed.defects:
            self.problem("message", content.defect_kind(defect), type(defect).__name__)  # as content.walk words it
        return parsed

    def raw_header_values(self, name: str) -> list[str]:
        """Every value of a header as sent (folded, encoded words left as they are).

        8-bit bytes in a header are UTF-8 when they can be (RFC 6532, as
        SMTPUTF8 clients send them); other bytes stay surrogate-escaped.
        """
        wanted = name.lower()
        return [_utf8(value) for key, value in self.headers.raw_items() if key.lower() == wanted]

    def _parsed(self, name: str, raw: str) -> object | None:
        """One header value parsed by the email package, or None (and a problem) when it cannot be."""
        try:
            return DECODE_POLICY.header_fetch_parse(name, raw)
        except Exception as exc:  # the email package raises many kinds on hostile input ('From: "' is an IndexError)
            self.problem("message", "malformed", f"{name} header cannot be parsed ({type(exc).__name__})")
            return None

    def header(self, name: str) -> str | None:
        """The first value of a header as text (encoded words decoded), or None."""
        values = self.raw_header_values(name)
        if not values:
            return None
        value = legacy_8bit(values[0])
        parsed = self._parsed(name, value)
        return _unfold(value) if parsed is None else str(parsed)

    def header_count(self, name: str) -> int:
        return len(self.raw_header_values(name))

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name, address) pairs from an address header, lower-cased addresses.

        Group syntax ("undisclosed-recipients:;") names no address. When the
        strict parser gives up on a value that has an @ in it, the lenient
        one has a go.
        """
        pairs: list[tuple[str, str]] = []
        for raw in self.raw_header_values(name):
            parsed = self._parsed(name, raw)
            try:
                found = [(a.display_name, a.addr_spec) for a in getattr(parsed, "addresses", ())]
            except Exception:
                found = []
            if not found and "@" in raw:
                found = [pair for pair in email.utils.getaddresses([_unfold(raw)]) if any(pair)]
            pairs.extend((display, normalise_address(addr)) for display, addr in found)
        return pairs

    @view
    def subject(self) -> str:
        return self.header("Subject") or ""

    @view
    def from_addresses(self) -> list[tuple[str, str]]:
        return self.addresses("From")

    @view
    def author(self) -> str | None:
        """The one From address a recipient would recognise, or None (no From, or several authors)."""
        authors = {address for _, address in self.from_addresses if address}
        return authors.pop() if len(authors) == 1 else None

    @property
    def sender(self) -> str:
        """Who sent it, for the rules and the holds: the author, else the envelope sender ("" for the null sender)."""
        return self.author or normalise_address(self.envelope.mail_from)

    @property
    def size(self) -> int:
        return len(self.raw)

    # -- MIME views (see milter/mail/content.py) ----------------------------------

    @view
    def tree(self) -> ParsedMessage:
        return content.parse(self)

    @view
    def parts(self) -> list[content.Part]:
        return content.walk(self)

    @view
    def text_bodies(self) -> list[content.TextBody]:
        return content.text_bodies(self)

    @view
    def body_text(self) -> str:
        return "\n\n".join(body.text for body in self.text_bodies)

    @view
    def attachments(self) -> list[content.Part]:
        """Every part that is not body text: files, inline images, attached messages."""
        return [part for part in self.parts if part.is_attachment]

    @view
    def archive_members(self) -> list[content.Member]:
        return content.archive_members(self)

    @view
    def attachment_texts(self) -> list[content.ExtractedText]:
        return content.extracted_texts(self)

    @view
    def all_text(self) -> str:
        """Subject, bodies and every extracted attachment text, for word rules."""
        return "\n\n".join([self.subject, self.body_text, *(item.text for item in self.attachment_texts)])


def legacy_8bit(value: str) -> str:
    """A header value with its non-UTF-8 bytes read as Windows-1252 (Latin-1 where it has no character).

    Old clients send raw Latin-1 headers; read as text for people (archive, search,
    console), "Réunion" beats "R\ufffdunion". Rules that compare raw values keep the bytes.
    """
    if value.isascii() or not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _utf8(value: str) -> str:
    try:
        return value.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value


def _unfold(value: str) -> str:
    return _FOLD.sub(" ", value).strip()


def address_of(addr: Address | str) -> str:
    return normalise_address(addr.addr_spec if isinstance(addr, Address) else addr)


def message_from_record(record: Mapping[str, Any], raw: bytes, limits: LimitSettings | None = None) -> Message:
    """The Message as it arrived, rebuilt from its archive record (envelope, direction, id) and stored bytes.

    The one place that does this: the console, the search index, FOIA
    renderings and the holds all see the direction the pipeline decided,
    not a guess. Mail from inside came from a trusted server or an AUTH user.
    """
    direction: Direction = record.get("direction") or "inbound"  # generated notices are recorded without one
    auth_user = record.get("auth_user")
    envelope = Envelope(
        mail_from=record.get("mail_from") or "",
        rcpt_to=tuple(record.get("rcpt_to") or ()),
        client_ip=record.get("client_ip") or "",
        helo=record.get("helo") or "",
        auth_user=auth_user,
        trusted=direction != "inbound" and auth_user is None,
    )
    return Message(envelope, raw, direction, limits or LimitSettings(), id=record["message_id"])
