"""The package a records officer hands to a requester or a court, checkable offline with standard tools.

    FOIA-2026-0007-20261123T154000Z/
      README.txt          what is here and how to check it
      messages/*.eml      released messages, the original bytes as archived
      redacted/*.html     released messages with redactions: a new rendering, the original not included
      manifest.csv, manifest.json   one row per responsive message: decision, exemption, file, SHA-256s
      decision-log.csv    every decision on the request, in order (redacted text is never named)
      checkpoint.txt      the archive's chain head at export
      SHA256SUMS          `sha256sum -c SHA256SUMS` checks every file above
and the same folder as a .zip beside it. Withheld messages are listed in the
manifest (date, sender, exemption, the original's SHA-256) but not included.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from archive import checkpoint, foia, records, rendering
from milter.kernel import csvsafe
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import as_utc, utcnow
from milter.mail.message import message_from_record
from milter.mail.settings import LimitSettings

MANIFEST_FIELDS = (
    "seq",
    "record_id",
    "message_id",
    "date",
    "from",
    "to",
    "subject",
    "disposition",
    "exemption",
    "redactions",
    "file",
    "file_sha256",
    "original_sha256",
    "original_size",
)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class Package:
    folder: Path
    zip_path: Path
    files: int
    released: int
    redacted: int
    withheld: int
    zip_sha256: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(text: str) -> str:
    return _SAFE.sub("-", text).strip("-") or "request"


@dataclass
class Draft:
    """The package's messages and manifest, read and rendered outside any write transaction."""

    request: dict[str, Any]
    files: dict[str, bytes]
    manifest: list[dict[str, Any]]
    counts: dict[str, int]


def export(
    database: Any,
    blobs: BlobStore,
    limits: LimitSettings,
    request_id: int,
    actor: str,
    exports: Path,
    gateway: str,
    *,
    audit: Any = None,
) -> Package:
    """Build and write the package; `audit(connection)` adds the person's audit entry to the same transaction."""
    with database.read() as connection:
        draft = prepare(connection, blobs, limits, request_id)
    with database.write() as connection:
        package = finish(connection, draft, actor, exports, gateway)
        if audit is not None:
            audit(connection, package)
    return package


def prepare(connection: Connection, blobs: BlobStore, limits: LimitSettings, request_id: int) -> Draft:
    request = foia.require(connection, request_id)
    reviews = [r for r in foia.current_reviews(connection, request_id).values() if r["responsive"]]
    if not reviews:
        raise ExportError("no message has been marked responsive yet: review the request's messages first")
    files: dict[str, bytes] = {}
    manifest: list[dict[str, Any]] = []
    counts = {"release": 0, "redacted": 0, "withhold": 0}
    for seq, review in enumerate(sorted(reviews, key=lambda r: r["record_id"]), start=1):
        record = records.get(connection, review["record_id"])
        assert record is not None  # reviews only name existing records
        raw = blobs.get(record["blob_sha256"], verify=True)  # a blob that fails its hash stops the export
        row = {
            "seq": seq,
            "record_id": record["id"],
            "message_id": record["message_id"],
            "disposition": review["disposition"],
            "exemption": review["exemption"] or "",
            "redactions": 0,
            "file": "",
            "file_sha256": "",
            "original_sha256": record["blob_sha256"],
            "original_size": len(raw),
        }
        message = message_from_record(record, raw, limits)
        date_text = message.header("Date") or as_utc(record["recorded_at"]).isoformat()
        if review["disposition"] == "withhold":
            counts["withhold"] += 1
            row.update(
                {
                    "date": date_text,
                    "from": message.header("From") or record["mail_from"] or "",
                    "to": "",
                    "subject": "",
                }
            )
            manifest.append(row)
            continue
        redactions = foia.redactions(connection, request_id, record["id"])
        if redactions:
            text = rendering.rendered_text(message)
            spans = rendering.spans_for(text, redactions)
            page = rendering.redacted_html(
                text,
                spans,
                title=f"{request['number']} item {seq} (redacted)",
                notice=f"A redacted rendering of archived message {record['message_id']}, "
                "made from its decoded text; the original is withheld in part.",
            )
            path = f"redacted/{seq:05d}-{record['id']}.html"
            files[path] = page.encode("utf-8")
            counts["redacted"] += 1
            header = _redacted_headers(text, spans)
            row.update(
                {
                    "redactions": len(spans),
                    "date": header.get("Date", date_text),
                    "from": header.get("From", ""),
                    "to": header.get("To", ""),
                    "subject": header.get("Subject", ""),
                    "exemption": ", ".join(sorted({r["reason"] for r in redactions})),
                }
            )
        else:
            path = f"messages/{seq:05d}-{record['id']}.eml"
            files[path] = raw  # byte for byte as archived
            counts["release"] += 1
            row.update(
                {
                    "date": date_text,
                    "from": message.header("From") or "",
                    "to": message.header("To") or "",
                    "subject": message.subject,
                }
            )
        row["file"], row["file_sha256"] = path, _sha256(files[path])
        manifest.append(row)
    return Draft(request, files, manifest, counts)


def finish(
    connection: Connection, draft: Draft, actor: str, exports: Path, gateway: str, now: datetime | None = None
) -> Package:
    """Checkpoint, decision log, sums; write the folder and the zip; log the export (in the caller's write transaction)."""
    request, files, manifest, counts = draft.request, dict(draft.files), draft.manifest, draft.counts
    request_id = request["id"]
    stamp = as_utc(now or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    name = f"{safe_name(request['number'])}-{stamp}"
    folder = Path(exports) / name
    if folder.exists():
        raise ExportError(f"{folder} already exists; try again in a second")
    taken = checkpoint.take(connection, actor, gateway, reason=f"export of {request['number']}")
    files["checkpoint.txt"] = taken.to_text().encode("utf-8")
    files["manifest.csv"] = csvsafe.table(MANIFEST_FIELDS, manifest)
    files["manifest.json"] = json.dumps(
        {"request": _request_summary(request), "exported_at": stamp, "exported_by": actor, "messages": manifest},
        indent=2,
        ensure_ascii=False,
    ).encode("utf-8")
    files["decision-log.csv"] = _decision_log(foia.events(connection, request_id))
    files["README.txt"] = _readme(request, counts, stamp).encode("utf-8")
    files["SHA256SUMS"] = "".join(f"{_sha256(data)}  {path}\n" for path, data in sorted(files.items())).encode("ascii")

    for path, data in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    zip_path = folder.with_suffix(".zip")
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(files.items()):
            archive.writestr(f"{name}/{path}", data)
    zip_sha = _sha256(zip_path.read_bytes())
    foia.note_export(
        connection,
        actor,
        request_id,
        package=zip_path.name,
        zip_sha256=zip_sha,
        files=len(files),
        released=counts["release"],
        redacted=counts["redacted"],
        withheld=counts["withhold"],
        checkpoint_record=taken.records,
        checkpoint_head=taken.archive_head,
    )
    return Package(folder, zip_path, len(files), counts["release"], counts["redacted"], counts["withhold"], zip_sha)


def _redacted_headers(text: str, spans: list[rendering.Span]) -> dict[str, str]:
    """The header lines of the rendering as they read after redaction (so the manifest leaks nothing)."""
    redacted = "".join(
        kept if reason is None else f"[REDACTED {reason}]" for kept, reason in rendering.redacted_pieces(text, spans)
    )
    header = redacted.split("\n\n", 1)[0]
    return {
        name: value.strip()
        for name, _, value in (line.partition(":") for line in header.splitlines())
        if name in rendering.HEADERS
    }


def _decision_log(events: list[dict[str, Any]]) -> bytes:
    rows = [
        {
            "at": as_utc(e["at"]).isoformat(),
            "actor": e["actor"],
            "action": e["action"],
            "record_id": e["record_id"] or "",
            "details": "; ".join(
                f"{k}={v}" for k, v in sorted(e["details"].items()) if v not in (None, "") and k != "note"
            ),
        }
        for e in events
    ]
    return csvsafe.table(("at", "actor", "action", "record_id", "details"), rows)


def _request_summary(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": request["number"],
        "kind": request["kind"],
        "title": request["title"],
        "requester": request["requester"],
        "received_on": request["received_on"].isoformat(),
        "due_on": request["due_on"].isoformat() if request["due_on"] else None,
        "status": request["status"],
    }


def _readme(request: dict[str, Any], counts: dict[str, int], stamp: str) -> str:
    return f"""Records produced for {foia.KINDS[request["kind"]]} {request["number"]}: {request["title"]}
Requester: {request["requester"]}. Exported {stamp} from the agency's mail archive (aup-milter).

What is here
  messages/         {counts["release"]} message(s) released in full: each .eml file is the original message,
                    byte for byte as the archive holds it; open it with any mail program.
  redacted/         {counts["redacted"]} message(s) released with redactions: an HTML rendering of the message's
                    text in which each withheld passage is replaced by a black bar naming the exemption.
                    The original of a redacted message is not included.
  manifest.csv      one row per responsive message ({counts["withhold"]} withheld in full are listed there
  manifest.json     with their exemption but not included), with the SHA-256 of each file and of each
                    original message as archived.
  decision-log.csv  every decision taken on this request, in order.
  checkpoint.txt    the archive's hash-chain head at the time of export.
  SHA256SUMS        the SHA-256 of every file above.

How to check that nothing was changed since export
  Linux:    sha256sum -c SHA256SUMS        (run in this folder; every line must say OK)
  macOS:    shasum -a 256 -c SHA256SUMS
  Windows:  Get-FileHash -Algorithm SHA256 FILE   (PowerShell; compare with the line for FILE in SHA256SUMS)
  Each messages/*.eml file's SHA-256 equals its original_sha256 in the manifest: it is the archived original.
  The original_sha256 of a redacted or withheld message lets the agency show a court, later, which
  archived message it was: the agency's archive is content-addressed by that hash and hash-chained,
  and checkpoint.txt fixes the chain as it stood at export.
"""
