"""`make bench-archive`: build a large archive through the import path, index it, time searches.

Synthetic mail with realistic shape: a Zipf-distributed vocabulary of 30,000
words, bodies of log-normal length (median about 3 KB, a long tail to 60 KB),
a tenth with a text attachment and a tenth with an HTML alternative, 400
senders and 2,000 recipients over two years. The messages go through
`archive.importer.Importer` (blobs, hash-chained records, batched
transactions), then `archive.index.Indexer`; then a set of realistic queries
runs many times each on page 1 and on a deep page. Figures print as a table and
go to bench-results/archive.json.

    python -m tests.bench.archive --messages 1000000 --folder /var/tmp/aup-bench
    python -m tests.bench.archive --messages 20000 --database postgresql+psycopg://...   # PostgreSQL
Not part of `make test`: the full run takes hours and tens of GB.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from archive import index, records, search
from archive.importer import Importer
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database
from milter.kernel.directory import load_directory
from milter.mail.settings import LimitSettings

ROOT = Path(__file__).resolve().parents[2]
VOCABULARY = 30_000
COMMON = (  # noqa: SIM905 - one line of prose is easier to edit than 120 quoted words
    "the of and to a in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if will more no out so said what up its about into "
    "than them can only other new some time could these two may then do first any my now such like our over man me "
    "budget meeting council reservoir permit road paving invoice contract school board police fire park water sewer "
    "zoning agenda minutes tax assessment grant payroll vendor proposal schedule report please thanks regards"
).split()
QUERIES = {
    "common word": "budget",
    "rare word": "zarquon",
    "two words": "reservoir permit",
    "phrase": '"council meeting"',
    "prefix": "assess*",
    "sender": "from:clerk7@example.gov",
    "subject field": "subject:invoice",
    "boolean": "(invoice OR contract) -paving",
    "words + date range": "payroll after:2025-03-01 before:2025-06-01",
    "attachment + direction": "has:attachment direction:inbound grant",
}


def pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))


class Mail:
    """Deterministic synthetic messages, so runs compare."""

    def __init__(self, count: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.spacing = 2 * 365 * 86400 / max(count, 1)  # two years of mail, evenly
        words = list(dict.fromkeys(COMMON + [pseudo_word(self.rng) for _ in range(VOCABULARY * 2)]))[:VOCABULARY]
        words[-1] = "zarquon"  # one rare word the queries look for
        self.words = words
        self.cumulative = list(__import__("itertools").accumulate(1 / (rank + 1) for rank in range(len(words))))
        self.senders = [f"clerk{n}@example.gov" for n in range(200)] + [
            f"vendor{n}@supplier{n % 50}.example.com" for n in range(200)
        ]
        self.recipients = [f"staff{n}@example.gov" for n in range(2000)]
        self.start = datetime(2024, 7, 1, tzinfo=UTC)

    def text(self, count: int) -> str:
        chosen = self.rng.choices(self.words, cum_weights=self.cumulative, k=count)
        lines = [" ".join(chosen[i : i + 12]) for i in range(0, len(chosen), 12)]
        return "\r\n".join(lines)

    def message(self, number: int) -> bytes:
        rng = self.rng
        sender = rng.choice(self.senders)
        to = ", ".join(rng.sample(self.recipients, rng.choice((1, 1, 1, 2, 3, 8))))
        sent = self.start + timedelta(seconds=number * self.spacing)
        words = min(int(math.exp(rng.gauss(math.log(450), 0.9))), 9000)  # about 6.5 bytes a word
        subject = self.text(rng.randint(3, 8)).replace("\r\n", " ")
        head = (
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {sent:%a, %d %b %Y %H:%M:%S +0000}\r\n"
            f"Message-ID: <{number}.{rng.getrandbits(40):x}@bench.example.gov>\r\nMIME-Version: 1.0\r\n"
            "Received: from mail.example.gov (mail.example.gov [192.0.2.25]) by gateway.example.gov\r\n"
        )
        body = self.text(words)
        kind = rng.random()
        if kind < 0.1:
            attachment = base64.encodebytes(self.text(rng.randint(200, 3000)).encode()).decode().replace("\n", "\r\n")
            return (
                head
                + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
                + body
                + '\r\n--b1\r\nContent-Type: text/plain; name="notes.txt"\r\nContent-Disposition: attachment; filename="notes.txt"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n" + attachment + "--b1--\r\n"
            ).encode()
        if kind < 0.2:
            html = "<html><body><p>" + body.replace("\r\n", "</p>\r\n<p>") + "</p></body></html>"
            return (
                head
                + 'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
                + body
                + "\r\n--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                + html
                + "\r\n--b2--\r\n"
            ).encode()
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()

    def items(self, count: int) -> Iterator[tuple[str, Any]]:
        for number in range(count):
            raw = self.message(number)
            yield f"bench {number}", (lambda raw=raw: raw)


def folder_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def table_sizes(database: Database) -> dict[str, int]:
    if not database.is_sqlite:
        with database.read() as connection:
            rows = connection.execute(
                text(
                    "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).all()
        return {name: int(size) for name, size in rows}
    with database.read() as connection:
        try:
            rows = connection.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
        except Exception:
            return {}
    sizes: dict[str, int] = {}
    for name, size in rows:
        owner = "archive_fts" if name.startswith("archive_fts") else name
        sizes[owner] = sizes.get(owner, 0) + int(size)
    return sizes


def time_queries(database: Database, repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    every: list[float] = []
    with database.read() as connection:
        for label, query in QUERIES.items():
            for page in (1, 20):
                timings = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    found = search.search(connection, query, page=page, per_page=50)
                    timings.append((time.perf_counter() - started) * 1000)
                timings.sort()
                every += timings
                results[f"{label}, page {page}"] = {
                    "query": query,
                    "total": found.total,
                    "p50_ms": round(statistics.median(timings), 1),
                    "p95_ms": round(timings[max(int(len(timings) * 0.95) - 1, 0)], 1),
                }
    every.sort()
    return {
        "queries": results,
        "p50_ms": round(statistics.median(every), 1),
        "p95_ms": round(every[int(len(every) * 0.95) - 1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=Path("/var/tmp/aup-bench-archive"))
    parser.add_argument("--database", help="an SQLAlchemy URL (default: SQLite in --folder)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="reuse an archive already built in --folder")
    args = parser.parse_args()
    folder: Path = args.folder
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    url = args.database or f"sqlite:///{folder / 'archive.db'}"
    database = Database(url)
    database.create_schema()
    blobs = BlobStore(folder / "blobs")
    limits = LimitSettings()
    figures: dict[str, Any] = {
        "messages": args.messages,
        "database": "SQLite" if database.is_sqlite else "PostgreSQL",
        "cpus": os.cpu_count(),
    }

    if not args.keep:
        mail = Mail(args.messages)
        generated = sum(len(mail.message(n)) for n in range(2000))
        figures["mean_message_bytes"] = generated // 2000
        mail = Mail(args.messages)
        started, done = time.perf_counter(), 0

        def progress(count: int) -> None:
            nonlocal done
            done += count
            if done % 50_000 < count:
                print(f"  imported {done:,} ({done / (time.perf_counter() - started):,.0f}/s)", flush=True)

        directory = load_directory(ROOT / "config" / "directory.toml")  # example.gov is local: vendors' mail is inbound
        report = Importer(database, blobs, directory, limits, "bench", batch=1000).run(
            mail.items(args.messages), "bench", progress
        )
        seconds = time.perf_counter() - started
        figures["import"] = {
            "imported": report.imported,
            "seconds": round(seconds, 1),
            "per_second": round(report.imported / seconds),
        }
        print(
            f"import: {report.imported:,} messages in {seconds:,.0f} s = {report.imported / seconds:,.0f}/s", flush=True
        )

    with database.read() as connection:
        pending = index.behind(connection)
        figures["archived_records"] = records.head(connection)[0]
    if pending:  # --keep on an archive whose import was stopped: index what is there
        started, done = time.perf_counter(), 0
        indexer = index.Indexer(database, blobs, limits, batch=1000)

        def indexed(count: int) -> None:
            nonlocal done
            done += count
            if done % 50_000 < count:
                print(f"  indexed {done:,} ({done / (time.perf_counter() - started):,.0f}/s)", flush=True)

        looked_at = indexer.run(progress=indexed)
        seconds = time.perf_counter() - started
        figures["index"] = {
            "records": looked_at,
            "seconds": round(seconds, 1),
            "per_second": round(looked_at / seconds),
        }
        print(f"index: {looked_at:,} records in {seconds:,.0f} s = {looked_at / seconds:,.0f}/s", flush=True)

    if database.is_sqlite:
        with database.write() as connection:
            connection.execute(text("ANALYZE"))
    figures["search"] = time_queries(database, args.repeats)
    figures["disk"] = {"blobs_bytes": folder_size(folder / "blobs"), "tables_bytes": table_sizes(database)}
    if database.is_sqlite:
        figures["disk"]["database_file_bytes"] = (folder / "archive.db").stat().st_size
    print(json.dumps(figures, indent=2))
    out = ROOT / "bench-results" / "archive.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    database.dispose()


if __name__ == "__main__":
    main()
