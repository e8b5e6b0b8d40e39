"""`aup-milter archive import`: mail from before the gateway (mbox, Maildir, a folder of .eml files).

Each message is stored like received mail (a content-addressed blob and a
chained archive record of kind "imported", never delivered) unless the
archive already holds the same bytes: duplicates are found by the SHA-256 of
the content (line endings made CRLF, as the gateway stores mail), not by
Message-ID, which senders reuse and forgers copy. Work goes in batches: the
batch's blobs are written, the file system is synced once, then one
transaction records them all, so an interrupted import leaves whole records
and can simply be run again (what is in already counts as duplicates).
What cannot be imported is named with the reason, never skipped silently.
"""

from __future__ import annotations

import ctypes
import mailbox
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from archive import audit, records
from milter.kernel.blobstore import BlobStore, sha256_hex
from milter.kernel.directory import Directory, normalise_address
from milter.mail import headers
from milter.mail.message import Envelope, Message, new_message_id, normalise_line_endings
from milter.mail.settings import LimitSettings

BATCH = 500
MAX_BYTES = 256 * 1024 * 1024  # larger than any mail system sends; past it the entry is reported, not read
MAX_FAILURES_LISTED = 10_000
_FIELD = regex.compile(rb"^[!-9;-~]+[ \t]*:")
_KNOWN_HEADERS = regex.compile(
    rb"^(?:from|to|cc|subject|date|message-id|received|return-path|sender)[ \t]*:", regex.IGNORECASE | regex.MULTILINE
)

Reader = Callable[[], bytes]


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str


@dataclass
class Report:
    seen: int = 0
    imported: int = 0
    duplicates: int = 0
    failures: list[Failure] = field(default_factory=list)
    failed: int = 0

    def fail(self, source: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_LISTED:
            self.failures.append(Failure(source, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "failures": [{"source": f.source, "reason": f.reason} for f in self.failures],
        }


class ImportError_(ValueError):  # not ImportError: that is Python's own
    """The path cannot be imported at all (missing, or not a mailbox)."""


# -- what to read ---------------------------------------------------------------


def entries(path: Path) -> tuple[str, int, Iterator[tuple[str, Reader]]]:
    """The format found at `path`, how many entries it has, and each entry's label and reader."""
    if not path.exists():
        raise ImportError_(f"{path} does not exist")
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            box = mailbox.Maildir(str(path), factory=None, create=False)
            keys = sorted(box.keys())
            return "Maildir", len(keys), ((f"{path.name}/{key}", _reader(box, key)) for key in keys)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".msg", ".txt"))
        if not files:
            raise ImportError_(f"{path} is a folder with no Maildir (cur/, new/) and no .eml files")
        return "folder of .eml files", len(files), ((str(p.relative_to(path)), p.read_bytes) for p in files)
    with path.open("rb") as handle:
        start = handle.read(5)
    if start == b"From ":
        mbox = mailbox.mbox(str(path), factory=None, create=False)
        numbered = list(mbox.keys())
        return (
            "mbox",
            len(numbered),
            ((f"{path.name} message {n}", _reader(mbox, key)) for n, key in enumerate(numbered, 1)),
        )
    return "one message file", 1, iter([(path.name, path.read_bytes)])


def _reader(box: mailbox.Mailbox[Any], key: str) -> Reader:
    return lambda: box.get_bytes(key)


def problem_with(raw: bytes) -> str | None:
    """Why these bytes are not an email message, or None."""
    if not raw.strip():
        return "empty: no header and no body"
    if len(raw) > MAX_BYTES:
        return f"larger than {MAX_BYTES // (1024 * 1024)} MiB; not read"
    if not _FIELD.match(raw):
        return "does not start with a header field (Name: value); not an email message"
    header_end = raw.find(b"\r\n\r\n")
    if not _KNOWN_HEADERS.search(raw[: header_end if header_end >= 0 else 65536]):
        return "no From, To, Subject, Date or Message-ID header; not an email message"
    return None


# -- writing --------------------------------------------------------------------


def _sync_filesystem(folder: Path) -> None:
    """Make every file written so far durable with one call (syncfs on Linux, else sync)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _write_unsynced(blobs: BlobStore, data: bytes, digest: str) -> None:
    """A blob written and renamed into place; the batch syncs the file system before its records commit."""
    target = blobs.path(digest)
    if target.is_file() and target.stat().st_size == len(data):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".tmp-{secrets.token_hex(8)}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o440)
        os.rename(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass
class Importer:
    database: Any  # milter.kernel.db.Database
    blobs: BlobStore
    directory: Directory | None
    limits: LimitSettings
    actor: str
    batch: int = BATCH

    def run(
        self, items: Iterable[tuple[str, Reader]], source: str, progress: Callable[[int], None] | None = None
    ) -> Report:
        report = Report()
        pending: list[tuple[str, bytes]] = []
        for label, read in items:
            report.seen += 1
            try:
                raw = read()
            except Exception as exc:  # an unreadable file or a broken mailbox entry: report it, go on
                report.fail(label, f"could not be read ({type(exc).__name__}: {exc})")
                continue
            reason = problem_with(raw)
            if reason is not None:
                report.fail(label, reason)
                continue
            pending.append((label, raw))
            if len(pending) >= self.batch:
                self._store(pending, report)
                if progress:
                    progress(len(pending))
                pending = []
        if pending:
            self._store(pending, report)
            if progress:
                progress(len(pending))
        with self.database.write() as connection:
            audit.record(
                connection,
                self.actor,
                "archive.import",
                source,
                source="cli",
                details={key: value for key, value in report.as_dict().items() if key != "failures"}
                | {"failures": [f"{f.source}: {f.reason}" for f in report.failures[:100]]},
            )
        return report

    def _store(self, batch: list[tuple[str, bytes]], report: Report) -> None:
        prepared: dict[str, dict[str, Any]] = {}
        for label, raw in batch:
            data, _ = normalise_line_endings(raw)
            digest = sha256_hex(data)
            if digest in prepared:
                report.duplicates += 1
                continue
            try:
                prepared[digest] = self._record(label, data, digest)
            except Exception as exc:  # the email package on hostile input: say so, keep going
                report.fail(label, f"its headers could not be read ({type(exc).__name__})")
                continue
            _write_unsynced(self.blobs, data, digest)
        if not prepared:
            return
        _sync_filesystem(self.blobs.root)
        with self.database.write() as connection:
            known = records.stored_digests(connection, list(prepared))
            rows = [row for digest, row in prepared.items() if digest not in known]
            records.append_many(connection, rows)
        report.duplicates += len(known)
        report.imported += len(rows)

    def _record(self, label: str, data: bytes, digest: str) -> dict[str, Any]:
        message = Message(Envelope("", ()), data, "inbound", self.limits)
        sender = next((a for _, a in headers.addresses(message, "Return-Path")), "") or next(
            (a for _, a in headers.addresses(message, "From")), ""
        )
        recipients = list(dict.fromkeys(a for _, a in headers.addresses(message, "To", "Cc", "Bcc", "Delivered-To")))
        return {
            "message_id": new_message_id(),
            "kind": "imported",
            "blob_sha256": digest,
            "size": len(data),
            "direction": self._direction(sender, recipients),
            "action": None,
            "mail_from": sender,
            "rcpt_to": recipients[:1000],
            **{
                column: headers.text(message, name)
                for column, name in (
                    ("header_from", "From"),
                    ("header_to", "To"),
                    ("header_cc", "Cc"),
                    ("subject", "Subject"),
                    ("header_message_id", "Message-ID"),
                    ("header_date", "Date"),
                )
            },
            "findings": [],
            "details": {
                "source": label,
                "imported_by": self.actor,
                "problems": [str(p) for p in message.problems][:20],
            },
        }

    def _direction(self, sender: str, recipients: list[str]) -> str | None:
        """As the gateway would have seen it, from the directory's domains; None when there is no directory."""
        if self.directory is None:
            return None
        if not sender or not self.directory.is_local(normalise_address(sender)):
            return "inbound"
        return "internal" if recipients and all(self.directory.is_local(r) for r in recipients) else "outbound"
