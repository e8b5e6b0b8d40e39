"""Searching the archive: a parsed query compiled for SQLite FTS5 or PostgreSQL, paged, counted, never capped.

Text parts of a query become one full-text expression wherever the boolean
structure allows (an FTS5 MATCH string, or a PostgreSQL tsquery written as a
literal: archive/index.py decides the words, so no text-search parser runs
on either side); metadata parts (direction, dates, rules) become SQL
conditions on the index rows. Every result carries the exact total, how far
the index is behind the archive, and how many messages of the searched
period have content the index could not hold (archive/completeness.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.sql import column, table

from archive import index, query
from archive.index import archive_finding, archive_index
from archive.query import And, Filter, Node, Not, Or, Text
from archive.records import archive_record

SORTS = {"newest": "newest first", "oldest": "oldest first", "relevance": "best match first"}
MAX_PER_PAGE = 500
WALK_DATES_ABOVE = 2000  # matches past which SQLite pages through the date index instead of sorting every match
FTS_COLUMNS = {None: None, "subject": "subject", "from": "from_", "to": "to_", "cc": "cc_", "filename": "filename_"}
_fts = table("archive_fts", column("rowid"))


@dataclass
class Results:
    text: str
    total: int
    page: int
    per_page: int
    sort: str
    hits: list[dict[str, Any]]
    behind: int  # archive records the indexer has not reached yet
    incomplete: int  # messages in the searched period with content the index does not hold
    after: date | None = None
    before: date | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.hits else 0

    @property
    def last(self) -> int:
        return self.first + len(self.hits) - 1 if self.hits else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.text,
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
            "sort": self.sort,
            "behind": self.behind,
            "incomplete": self.incomplete,
            "period": {
                "after": self.after and self.after.isoformat(),
                "before": self.before and self.before.isoformat(),
            },
            "hits": [
                {key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in hit.items()}
                for hit in self.hits
            ],
        }


def start_of(day: date, zone: tzinfo) -> datetime:
    """Midnight at the start of `day` in the agency's time zone, in UTC (what the index stores)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


class Compiler:
    """Turns a query tree into one SQL condition on archive_index, for one database dialect."""

    def __init__(self, dialect: str, zone: tzinfo) -> None:
        self.postgres = dialect == "postgresql"
        self.zone = zone

    # -- full-text parts --------------------------------------------------------

    def text(self, node: Node) -> str | None:
        """The node as one full-text expression, or None when it is not pure text (or, on SQLite, only a negation)."""
        if isinstance(node, Text):
            return self._pg_text(node) if self.postgres else self._fts_text(node)
        if isinstance(node, Or):
            parts = [self.text(item) for item in node.items]
            if any(part is None for part in parts):
                return None
            return "(" + (" | " if self.postgres else " OR ").join(parts) + ")"  # type: ignore[arg-type]
        if isinstance(node, And):
            return self._text_and(list(node.items))
        if isinstance(node, Not) and self.postgres:
            inner = self.text(node.item)
            return None if inner is None else f"!{inner}"
        return None

    def _text_and(self, items: list[Node]) -> str | None:
        if self.postgres:
            parts = [self.text(item) for item in items]
            return None if any(p is None for p in parts) else "(" + " & ".join(parts) + ")"  # type: ignore[arg-type]
        positives = [self.text(item) for item in items if not isinstance(item, Not)]
        negatives = [self.text(item.item) for item in items if isinstance(item, Not)]
        if not positives or any(p is None for p in positives + negatives):
            return None  # FTS5's NOT only takes away from something
        return "(" + " AND ".join(positives) + ")" + "".join(f" NOT {n}" for n in negatives)  # type: ignore[arg-type]

    @staticmethod
    def _fts_text(node: Text) -> str:
        phrase = '"' + " ".join(node.words) + '"' + (" *" if node.prefix else "")
        column_name = FTS_COLUMNS[node.field]
        return f"({column_name} : {phrase})" if column_name else phrase

    @staticmethod
    def _pg_text(node: Text) -> str:
        namespace = {"from": "from:", "to": "to:", "cc": "cc:", "filename": "file:"}.get(node.field or "", "")
        weight = "A" if node.field == "subject" else ""
        lexemes = [f"'{namespace}{word}'" for word in node.words]
        marks = [weight] * len(lexemes)
        if node.prefix:
            marks[-1] = "*" + weight
        terms = [f"{lexeme}:{mark}" if mark else lexeme for lexeme, mark in zip(lexemes, marks, strict=True)]
        return terms[0] if len(terms) == 1 else "(" + " <-> ".join(terms) + ")"

    def matches(self, expression: str) -> ColumnElement[bool]:
        if self.postgres:
            return archive_index.c.document.op("@@")(cast(bindparam(None, expression), TSQUERY))
        found = select(_fts.c.rowid).where(literal_column("archive_fts").op("MATCH")(bindparam(None, expression)))
        return archive_index.c.record_id.in_(found)

    # -- everything else ----------------------------------------------------------

    def condition(self, node: Node | None) -> ColumnElement[bool]:
        if node is None:
            return true()
        expression = self.text(node)
        if expression is not None:
            return self.matches(expression)
        if isinstance(node, Filter):
            return self.filter(node)
        if isinstance(node, Not):
            return not_(self.condition(node.item))
        if isinstance(node, And):
            return and_(*self._grouped(list(node.items), conjunction=True))
        if isinstance(node, Or):
            return or_(*self._grouped(list(node.items), conjunction=False))
        raise TypeError(f"not a query node: {node!r}")

    def _grouped(self, items: list[Node], *, conjunction: bool) -> list[ColumnElement[bool]]:
        """Text items folded into one full-text expression (one index lookup), the rest as SQL."""
        texty = [
            item
            for item in items
            if self.text(item) is not None
            or (conjunction and isinstance(item, Not) and self.text(item.item) is not None)
        ]
        combined = (self._text_and(texty) if conjunction else self.text(Or(tuple(texty)))) if len(texty) > 1 else None
        if combined is None:
            return [self.condition(item) for item in items]
        rest = [item for item in items if item not in texty]
        return [self.matches(combined), *(self.condition(item) for item in rest)]

    def filter(self, node: Filter) -> ColumnElement[bool]:
        c = archive_index.c
        if node.field == "direction":
            return c.direction == node.value
        if node.field == "decision":
            return c.action == node.value
        if node.field == "kind":
            return c.kind == node.value
        if node.field == "has":
            return c.has_attachment.is_(True)
        if node.field == "rule":
            return c.record_id.in_(select(archive_finding.c.record_id).where(archive_finding.c.rule == node.value))
        assert isinstance(node.value, date)
        if node.field == "after":
            return c.message_date >= start_of(node.value, self.zone)
        if node.field == "before":
            return c.message_date < start_of(node.value, self.zone)
        return false()

    def ranking(self, node: Node | None) -> str | None:
        """The full-text expression to rank by: the whole query, or its text part when ANDed with filters."""
        if node is None:
            return None
        whole = self.text(node)
        if whole is not None or not isinstance(node, And):
            return whole
        texty = [item for item in node.items if self.text(item) is not None]
        return self._text_and(texty) if texty else None


def search(
    connection: Connection, text: str, *, page: int = 1, per_page: int = 50, sort: str = "newest", zone: tzinfo = UTC
) -> Results:
    """One page of messages matching `text`, with the exact total. Raises QueryError for a query that cannot run."""
    if sort not in SORTS:
        raise query.QueryError(f"sort {sort!r} is not known; use {', '.join(SORTS)}")
    page, per_page = max(int(page), 1), min(max(int(per_page), 1), MAX_PER_PAGE)
    node = query.parse(text)
    compiler = Compiler(connection.dialect.name, zone)
    where = compiler.condition(node)
    whole_text = compiler.text(node) if node is not None else None
    if whole_text is not None and not compiler.postgres:
        # Every FTS row has its index row (written together): count in the FTS index alone.
        counted = (
            select(func.count())
            .select_from(_fts)
            .where(literal_column("archive_fts").op("MATCH")(bindparam(None, whole_text)))
        )
    else:
        counted = select(func.count()).select_from(archive_index).where(where)
    total = int(connection.execute(counted).scalar_one())
    i, r = archive_index.c, archive_record.c
    columns = [
        i.record_id,
        r.message_id,
        r.kind,
        i.message_date,
        r.recorded_at,
        r.direction,
        r.action,
        r.hold_queue,
        r.header_from,
        r.header_to,
        r.subject,
        r.size,
        i.has_attachment,
        i.attachments,
        i.incomplete,
    ]
    statement = select(*columns).select_from(archive_index.join(archive_record, r.id == i.record_id)).where(where)
    notes: list[str] = []
    offset = (page - 1) * per_page
    ranking = compiler.ranking(node) if sort == "relevance" else None
    if sort == "relevance" and ranking is None:
        notes.append("the query has no words to rank by, so the newest are first")
    if ranking is not None and compiler.postgres:
        score = func.ts_rank_cd(i.document, cast(bindparam(None, ranking), TSQUERY))
        statement = statement.order_by(score.desc(), i.message_date.desc(), i.record_id.desc())
    elif ranking is not None:
        ranked = (
            select(_fts.c.rowid.label("rowid"), literal_column("bm25(archive_fts)").label("score"))
            .where(literal_column("archive_fts").op("MATCH")(bindparam(None, ranking)))
            .subquery()
        )
        statement = statement.join(ranked, ranked.c.rowid == i.record_id).order_by(
            ranked.c.score, i.message_date.desc(), i.record_id.desc()
        )
    else:
        order = (i.message_date, i.record_id) if sort == "oldest" else (i.message_date.desc(), i.record_id.desc())
        if not compiler.postgres and total > WALK_DATES_ABOVE:
            # Many matches: walking the date index and testing each row stops after one page; SQLite's
            # planner would rather fetch every match and sort them (ten times slower for common words).
            page_ids = (
                select(i.record_id)
                .with_hint(archive_index, "INDEXED BY ix_archive_index_message_date", "sqlite")
                .where(where)
                .order_by(*order)
                .limit(per_page)
                .offset(offset)
            )
            chosen = [row.record_id for row in connection.execute(page_ids)]
            statement = (
                select(*columns)
                .select_from(archive_index.join(archive_record, r.id == i.record_id))
                .where(i.record_id.in_(chosen))
            )
            offset = 0
        statement = statement.order_by(*order)
    rows = connection.execute(statement.limit(per_page).offset(offset)).all()
    after, before = query.period(node)
    return Results(
        text,
        total,
        page,
        per_page,
        sort,
        [dict(row._mapping) for row in rows],
        index.behind(connection),
        incomplete_count(connection, after, before, zone),
        after,
        before,
        notes,
    )


def _period(after: date | None, before: date | None, zone: tzinfo) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [archive_index.c.incomplete.is_(True)]
    if after is not None:
        conditions.append(archive_index.c.message_date >= start_of(after, zone))
    if before is not None:
        conditions.append(archive_index.c.message_date < start_of(before, zone))
    return conditions


def incomplete_count(connection: Connection, after: date | None, before: date | None, zone: tzinfo = UTC) -> int:
    """Messages dated in the period whose content the index does not fully hold."""
    statement = select(func.count()).select_from(archive_index).where(*_period(after, before, zone))
    return int(connection.execute(statement).scalar_one())


def incomplete(
    connection: Connection,
    after: date | None,
    before: date | None,
    zone: tzinfo = UTC,
    *,
    page: int = 1,
    per_page: int = 50,
) -> tuple[int, list[dict[str, Any]]]:
    """The messages behind `incomplete_count`, oldest first, with what could not be indexed in each."""
    page, per_page = max(page, 1), min(max(per_page, 1), MAX_PER_PAGE)
    i, r = archive_index.c, archive_record.c
    conditions = _period(after, before, zone)
    statement = (
        select(i.record_id, r.message_id, i.message_date, r.direction, r.header_from, r.subject, i.problems)
        .select_from(archive_index.join(archive_record, r.id == i.record_id))
        .where(*conditions)
        .order_by(i.message_date, i.record_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = [dict(row._mapping) for row in connection.execute(statement)]
    for row in rows:
        row["problems"] = [p for p in row["problems"] or [] if p.get("kind") in index.UNINDEXED_KINDS]
    return incomplete_count(connection, after, before, zone), rows
