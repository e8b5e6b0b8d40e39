"""The search index: derived from the archive in the background, rebuilt at will.

A periodic job reads archive records past the index's watermark, opens their
blobs, extracts text with the Message views (bodies, attachment text, file
names) and writes, in short transactions so the SMTP accept path is never
kept waiting:
- one `archive_index` row per message (date, direction, decision, attachment
  flag, and what could not be indexed, for completeness reports);
- the full text: an FTS5 table on SQLite, a weighted tsvector column with a
  GIN index on PostgreSQL (see archive/search.py for how queries use them);
- its addresses and rule findings, for reports and `rule:` searches.
Unlike the archive these tables may be emptied and rebuilt (`archive reindex`).
"""

from __future__ import annotations

import email.utils
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.schema import DDL

from archive import records, words
from archive.records import archive_record
from milter.kernel.blobstore import BlobCorrupt, BlobMissing, BlobStore
from milter.kernel.db import as_utc, metadata, utcnow
from milter.kernel.directory import normalise_address
from milter.mail import containers, extract, headers
from milter.mail.message import Envelope, Message, message_from_record
from milter.mail.settings import LimitSettings

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

# Versions of a message that are searched. A "delivered" record is the edited
# copy of a received one (same message): the received original is what is found.
INDEXED_KINDS = frozenset({"received", "generated", "imported"})
# Problems after which some of a message's content is not in the index.
UNINDEXED_KINDS = frozenset({"encrypted", "corrupt", "cap", "unsupported", "malformed"})
MAX_PROBLEMS = 50
MAX_ADDRESSES = 1000
# Parts that carry no text of their own: signatures, keys, and attached messages (their parts are indexed).
NO_TEXT_TYPES = frozenset(
    {
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-signature",
        "application/pgp-keys",
        "message/rfc822",
        "message/delivery-status",
        "text/rfc822-headers",
        "message/disposition-notification",
        "message/global",
        "message/global-headers",
    }
)
ENCRYPTED_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime", "application/pgp-encrypted"})
PG_MAX_POSITION = 16383  # PostgreSQL's limit for a word's position in a tsvector
PG_MAX_POSITIONS = 255  # positions kept per word (PostgreSQL keeps 256)
FIELDS = ("subject", "body", "attachments", "from_", "to_", "cc_", "filename_")
# PostgreSQL: subject, body and attachment words weighted A, B, C; address and
# file name words weighted D, and also stored once more under a field prefix
# ("from:alice") so a fielded search is one lexeme lookup.
PG_WEIGHTS = {"subject": "A", "body": "B", "attachments": "C", "from_": "", "to_": "", "cc_": "", "filename_": ""}
PG_PREFIXES = {"from_": "from:", "to_": "to:", "cc_": "cc:", "filename_": "file:"}

archive_index = Table(
    "archive_index",
    metadata,
    Column("record_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("message_id", String(40), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("message_date", DateTime(timezone=True), nullable=False, index=True),
    Column("direction", String(16)),
    Column("action", String(16)),
    Column("has_attachment", Boolean, nullable=False),
    Column("attachments", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("incomplete", Boolean, nullable=False),
    Column("problems", JSON, nullable=False),
    Column("indexed_at", DateTime(timezone=True), nullable=False),
    Column("document", TSVECTOR().with_variant(Text(), "sqlite")),  # PostgreSQL only; always empty on SQLite
    Index("archive_index_incomplete", "incomplete", "message_date"),
)
archive_address = Table(
    "archive_address",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False, index=True),
    Column("address", String(320), nullable=False),
    Column("role", String(8), nullable=False),  # from, to, cc (headers); sender, rcpt (envelope)
    Column("message_date", DateTime(timezone=True), nullable=False),
    Index("archive_address_lookup", "address", "message_date"),
)
archive_finding = Table(
    "archive_finding",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False, index=True),
    Column("rule", String(64), nullable=False),
    Column("action", String(16)),
    Column("mode", String(16)),
    Column("message_date", DateTime(timezone=True), nullable=False),
    Index("archive_finding_lookup", "rule", "message_date"),
)
archive_index_state = Table(
    "archive_index_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_record_id", BigInteger, nullable=False),
)
FTS_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS archive_fts USING fts5("
    + ", ".join(FIELDS)
    + ", content='', tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")"
)
event.listen(
    archive_index_state, "after_create", DDL("INSERT INTO archive_index_state (id, last_record_id) VALUES (1, 0)")
)
event.listen(archive_index, "after_create", DDL(FTS_CREATE).execute_if(dialect="sqlite"))
event.listen(
    archive_index,
    "after_create",
    DDL("CREATE INDEX IF NOT EXISTS archive_index_document ON archive_index USING gin (document)").execute_if(
        dialect="postgresql"
    ),
)

_FTS_INSERT = text(
    "INSERT INTO archive_fts (rowid, "
    + ", ".join(FIELDS)
    + ") VALUES (:rowid, "
    + ", ".join(f":{name}" for name in FIELDS)
    + ")"
)
_INDEX_INSERT_PG = insert(archive_index).values(document=cast(bindparam("document_text"), TSVECTOR))


@dataclass
class Document:
    """What the index holds for one archive record."""

    record_id: int
    message_id: str
    kind: str
    message_date: datetime
    direction: str | None
    action: str | None
    size: int
    attachments: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    fields: dict[str, list[list[str]]] = field(default_factory=dict)  # field -> its values, each a list of words
    addresses: list[tuple[str, str]] = field(default_factory=list)  # (address, role)
    findings: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (rule, action, mode)

    @property
    def incomplete(self) -> bool:
        return any(problem["kind"] in UNINDEXED_KINDS for problem in self.problems)

    def problem(self, where: str, kind: str, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append({"where": where, "kind": kind, "detail": detail})

    def fts_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"rowid": self.record_id}
        for name in FIELDS:
            row[name] = f" {words.SEPARATOR} ".join(" ".join(value) for value in self.fields.get(name, []) if value)
        return row

    def tsvector(self) -> str:
        """The document as a PostgreSQL tsvector literal: words, positions and weights decided here, not by a parser."""
        positions: dict[str, list[str]] = {}
        position = 1

        def add(values: list[list[str]], weight: str, prefix: str = "") -> None:
            nonlocal position
            for value in values:
                for word in value:
                    spots = positions.setdefault(prefix + word, [])
                    if len(spots) < PG_MAX_POSITIONS:
                        spots.append(f"{min(position, PG_MAX_POSITION)}{weight}")
                    position += 1
                position += 1  # a gap: a phrase never spans two values

        for name in FIELDS:
            add(self.fields.get(name, []), PG_WEIGHTS[name])
        for name, prefix in PG_PREFIXES.items():
            add(self.fields.get(name, []), "", prefix)
        return " ".join(f"'{word}':{','.join(dict.fromkeys(spots))}" for word, spots in positions.items())


def message_date(kind: str, recorded_at: datetime, header_date: str | None) -> datetime:
    """When the message was sent, for searches by date: the gateway's own clock, except for imported mail."""
    recorded_at = as_utc(recorded_at)
    if kind != "imported" or not header_date:
        return recorded_at
    try:
        sent = email.utils.parsedate_to_datetime(header_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return recorded_at
    if sent is None or sent.year < 1971 or (sent.tzinfo is None and sent.year > 9000):
        return recorded_at
    sent = sent.replace(tzinfo=UTC) if sent.tzinfo is None else sent.astimezone(UTC)
    return sent if sent <= recorded_at + timedelta(days=1) else recorded_at  # a date in the future is not believed


def _attempt(document: Document, where: str, what: str, compute: Callable[[], Any], default: Any) -> Any:
    try:
        return compute()
    except Exception as exc:  # a hostile message must not stop the indexer; what was missed is recorded
        document.problem(where, "corrupt", f"{what} could not be read ({type(exc).__name__})")
        return default


def document_for(record: dict[str, Any], raw: bytes | None, limits: LimitSettings, max_chars: int) -> Document:
    """Extract everything the index holds for one record; `raw` is None when its blob could not be read."""
    document = Document(
        record["id"],
        record["message_id"],
        record["kind"],
        message_date(record["kind"], record["recorded_at"], record.get("header_date")),
        record.get("direction"),
        record.get("action"),
        int(record.get("size") or 0),
    )
    document.findings = [
        (str(f.get("policy"))[:64], f.get("action"), f.get("mode"))
        for f in record.get("findings") or []
        if isinstance(f, dict) and f.get("policy")
    ]
    envelope = Envelope(
        mail_from=record.get("mail_from") or "",
        rcpt_to=tuple(record.get("rcpt_to") or ()),
        client_ip=record.get("client_ip") or "",
        helo=record.get("helo") or "",
        auth_user=record.get("auth_user"),
    )
    document.addresses = _envelope_addresses(envelope)
    if raw is None:
        # What the record itself says is still searchable.
        document.fields = {
            "subject": [words.words(record.get("subject"))],
            "from_": [words.words(record.get("header_from")), words.words(envelope.mail_from)],
            "to_": [words.words(record.get("header_to")), *(words.words(r) for r in envelope.rcpt_to)],
            "cc_": [words.words(record.get("header_cc"))],
        }
        return document
    message = message_from_record(record, raw, limits)
    _read_message(document, message, max_chars)
    return document


def _envelope_addresses(envelope: Envelope) -> list[tuple[str, str]]:
    found = [(normalise_address(envelope.mail_from), "sender")] if envelope.mail_from else []
    found += [(normalise_address(rcpt), "rcpt") for rcpt in envelope.rcpt_to]
    return found


def _read_message(document: Document, message: Message, max_chars: int) -> None:
    subject = _attempt(document, "message", "the subject", lambda: headers.text(message, "Subject") or "", "")
    values = {
        name: _attempt(document, "message", f"the {name} header", functools.partial(headers.text, message, name), None)
        for name in ("From", "To", "Cc")
    }
    for role in ("from", "to", "cc"):
        pairs = _attempt(
            document,
            "message",
            f"the {role} addresses",
            functools.partial(headers.addresses, message, role.capitalize()),
            [],
        )
        document.addresses += [(address, role) for _, address in pairs]
    body = _attempt(document, "message", "the message body", lambda: message.body_text, "")
    texts = _attempt(document, "message", "the attachments' text", lambda: message.attachment_texts, [])
    attachments = _attempt(document, "message", "the attachments", lambda: message.attachments, [])
    members = _attempt(document, "message", "the archives' members", lambda: message.archive_members, [])
    files = [part for part in attachments if not part.is_inline_image and not part.content_type.startswith("message/")]
    document.attachments = len(files)
    for problem in message.problems:
        document.problem(problem.where, problem.kind, problem.detail)
    _note_unsearchable(document, attachments, members, texts, body)

    budget = max_chars
    body_words, budget = _capped_words(document, body, budget, "the message body", max_chars)
    attachment_words = []
    for item in texts:
        found, budget = _capped_words(document, item.text, budget, item.filename or f"part {item.path}", max_chars)
        attachment_words.append(found)
    envelope = message.envelope
    document.fields = {
        "subject": [words.words(subject)],
        "body": [body_words],
        "attachments": attachment_words,
        "from_": [words.words(values["From"]), words.words(envelope.mail_from)],
        "to_": [words.words(values["To"]), *(words.words(rcpt) for rcpt in envelope.rcpt_to[:MAX_ADDRESSES])],
        "cc_": [words.words(values["Cc"])],
        "filename_": [
            words.words(name)
            for name in [*(p.filename for p in attachments if p.filename), *(m.path for m in members)][:MAX_ADDRESSES]
        ],
    }
    document.addresses = list(dict.fromkeys(document.addresses))[:MAX_ADDRESSES]


def _capped_words(document: Document, content: str, budget: int, label: str, limit: int) -> tuple[list[str], int]:
    if len(content) > budget:
        document.problem(
            "message",
            "cap",
            f"{label}: past the {limit} characters of text the index holds for one message; the rest is not searchable",
        )
        content = content[: max(budget, 0)]
    return words.words(content), budget - len(content)


def _note_unsearchable(
    document: Document, attachments: list[Any], members: list[Any], texts: list[Any], body: str
) -> None:
    """Content the index cannot hold as text: encrypted messages, scans, images, formats without an extractor."""
    read = {item.path for item in texts}
    troubled = {problem["where"] for problem in document.problems}
    if "-----BEGIN PGP MESSAGE-----" in body:
        document.problem("message", "encrypted", "a PGP-encrypted message; its contents cannot be indexed")
    for part in attachments:
        label = part.filename or f"part {part.path}"
        if part.content_type in ENCRYPTED_TYPES:
            document.problem(
                part.path, "encrypted", f"{label}: S/MIME or PGP protected; its contents cannot be indexed"
            )
            continue
        if part.is_inline_image or part.content_type in NO_TEXT_TYPES or part.size == 0 or part.path in troubled:
            continue
        ftype = part.true_type
        if containers.is_archive(ftype):
            continue  # its members are looked at below
        kind = extract.kind_of(ftype)
        if kind == "pdf" and part.path not in read:
            document.problem(
                part.path,
                "unsupported",
                f"{label}: a PDF without a text layer (a scan?); its contents are not searchable",
            )
        elif kind is None:
            document.problem(
                part.path, "unsupported", f"{label} ({ftype.mime}): its contents are not searchable as text"
            )
    for member in members:
        if (
            member.true_type is None
            or containers.is_archive(member.true_type)
            or member.encrypted
            or member.path in troubled
        ):
            continue
        if extract.kind_of(member.true_type) is None and member.size:
            document.problem(
                member.path,
                "unsupported",
                f"{member.name} ({member.true_type.mime}): its contents are not searchable as text",
            )


# -- writing ------------------------------------------------------------------


def watermark(connection: Connection) -> int:
    return int(
        connection.execute(
            select(archive_index_state.c.last_record_id).where(archive_index_state.c.id == 1)
        ).scalar_one()
    )


def behind(connection: Connection) -> int:
    """Archive records not yet looked at by the indexer."""
    last, _ = records.head(connection)
    return max(last - watermark(connection), 0)


def write(connection: Connection, documents: list[Document], through: int) -> int:
    """Store `documents` and move the watermark to `through`; skips what another indexer wrote first."""
    state = select(archive_index_state.c.last_record_id).where(archive_index_state.c.id == 1).with_for_update()
    done = int(connection.execute(state).scalar_one())
    documents = [d for d in documents if d.record_id > done]
    if documents:
        rows = [_index_row(d) for d in documents]
        if connection.dialect.name == "postgresql":
            for row, document in zip(rows, documents, strict=True):
                row["document_text"] = document.tsvector()
            connection.execute(_INDEX_INSERT_PG, rows)
        else:
            connection.execute(insert(archive_index), rows)
            connection.execute(_FTS_INSERT, [d.fts_row() for d in documents])
        addresses = [
            {"record_id": d.record_id, "address": address[:320], "role": role, "message_date": d.message_date}
            for d in documents
            for address, role in d.addresses
        ]
        if addresses:
            connection.execute(insert(archive_address), addresses)
        findings = [
            {"record_id": d.record_id, "rule": rule, "action": action, "mode": mode, "message_date": d.message_date}
            for d in documents
            for rule, action, mode in d.findings
        ]
        if findings:
            connection.execute(insert(archive_finding), findings)
    if through > done:
        connection.execute(
            update(archive_index_state).where(archive_index_state.c.id == 1).values(last_record_id=through)
        )
    return len(documents)


def _index_row(document: Document) -> dict[str, Any]:
    return {
        "record_id": document.record_id,
        "message_id": document.message_id,
        "kind": document.kind,
        "message_date": document.message_date,
        "direction": document.direction,
        "action": document.action,
        "has_attachment": document.attachments > 0,
        "attachments": document.attachments,
        "size": document.size,
        "incomplete": document.incomplete,
        "problems": document.problems,
        "indexed_at": utcnow(),
    }


@dataclass
class Indexer:
    """Brings the index up to the archive's head, one batch (one short write transaction) at a time."""

    database: Any  # milter.kernel.db.Database
    blobs: BlobStore
    limits: LimitSettings
    max_chars: int = 1_000_000
    batch: int = 200

    def pending(self) -> list[dict[str, Any]]:
        with self.database.read() as connection:
            after = watermark(connection)
            rows = connection.execute(
                select(archive_record)
                .where(archive_record.c.id > after)
                .order_by(archive_record.c.id)
                .limit(self.batch)
            ).all()
        return [dict(row._mapping) for row in rows]

    def documents(self, rows: Iterable[dict[str, Any]]) -> list[Document]:
        found = []
        for row in rows:
            if row["kind"] not in INDEXED_KINDS:
                continue
            raw: bytes | None
            try:
                raw = self.blobs.get(row["blob_sha256"], verify=True)
            except (BlobMissing, BlobCorrupt, OSError) as exc:
                raw = None
                problem = (
                    f"the stored message could not be read ({type(exc).__name__}); run `aup-milter archive verify`"
                )
            document = document_for(row, raw, self.limits, self.max_chars)
            if raw is None:
                document.problem("message", "corrupt", problem)
            found.append(document)
        return found

    def run(self, *, seconds: float | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Index until caught up (or `seconds` have passed); returns how many records were looked at."""
        started, looked_at = time.monotonic(), 0
        while seconds is None or time.monotonic() - started < seconds:
            rows = self.pending()
            if not rows:
                break
            documents = self.documents(rows)
            with self.database.write() as connection:
                write(connection, documents, rows[-1]["id"])
            looked_at += len(rows)
            if progress:
                progress(len(rows))
        return looked_at


def reset(connection: Connection) -> None:
    """Empty the index (derived data only) so it is built again from the archive."""
    for table in (archive_finding, archive_address, archive_index):
        connection.execute(delete(table))
    if connection.dialect.name == "sqlite":
        connection.execute(text("INSERT INTO archive_fts (archive_fts) VALUES ('delete-all')"))
    connection.execute(update(archive_index_state).where(archive_index_state.c.id == 1).values(last_record_id=0))


def indexer_for(runtime: Runtime) -> Indexer:
    settings = runtime.config.settings
    return Indexer(
        runtime.database, runtime.blobs, settings.limits, settings.archive.index_max_chars, settings.archive.index_batch
    )


def index_job(runtime: Runtime) -> None:
    """The periodic job: index what arrived since the last run (at most a minute's work per run)."""
    looked_at = indexer_for(runtime).run(seconds=60)
    if looked_at:
        log.info("search index: %d archive records indexed", looked_at)


def count_indexed(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(archive_index)).scalar_one())
