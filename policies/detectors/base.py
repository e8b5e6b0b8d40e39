"""What every detector shares: hits, confidence, masking, and the Text it reads.

A detector reads one located piece of text (the body, a sheet, a page) and
yields Hits. A Hit never holds the value it found, only a masked form for
people and a salted digest for counting distinct values, so nothing
downstream (reasons, evidence, logs) can leak a full number.

Every regular expression runs with a timeout (`Text.timeout`); past it the
`regex` package raises TimeoutError and the rule fails closed (4xx).

A Text knows its words and its longest number (tokens.py, one pass): a word
list is searched only for the terms whose words occur in the text, and a
number detector asks `has_number` before searching for numbers.
"""

from __future__ import annotations

import bisect
import hashlib
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum

import regex

from policies.detectors.tokens import Tokens
from policies.detectors.wordlists import Wordlists

_SALT = secrets.token_bytes(16)  # per process: digests count values, they never identify them


class Confidence(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Hit:
    detector: str  # "ssn", "payment_card", "routing_number", ...
    family: str  # the threshold group in config: "ssn", "card", "bank", ...
    confidence: Confidence
    part: str  # the MIME part or archive member path: "2", "2/records.zip/staff.xlsx"
    location: str  # for people: "budget.xlsx, sheet Payroll", "the message body"
    masked: str  # "***-**-1234", or the words found for vocabulary detectors
    key: str = field(default="", repr=False)  # salted digest of the value: counts distinct values

    def evidence(self) -> str:
        return f"{self.detector} confidence={self.confidence} location=part {self.part}: {self.location} value={self.masked}"


def digest(detector: str, value: str) -> str:
    return hashlib.blake2b(f"{detector}:{value}".encode(), key=_SALT, digest_size=12).hexdigest()


def last_four(digits: str, stars: int) -> str:
    return "*" * stars + digits[-4:]


@dataclass
class Text:
    """One located text segment and the look-ups detectors make on it, each computed once."""

    content: str
    part: str
    location: str
    words: Wordlists
    timeout: float
    window: int = 60  # characters either side of a value in which a keyword counts as "near"
    tokens: Tokens | None = field(default=None, repr=False)  # its words and numbers: computed on first use unless given
    _keywords: dict[str, tuple[list[int], list[tuple[int, int, str]]]] = field(default_factory=dict, repr=False)
    _line_starts: list[int] | None = field(default=None, repr=False)
    _headers: list[int] | None = field(
        default=None, repr=False
    )  # per line: the line index of its table's header, or -1
    _columns: dict[tuple[str, int], frozenset[int]] = field(default_factory=dict, repr=False)
    _matches: dict[regex.Pattern[str], list[int]] = field(default_factory=dict, repr=False)

    def find(self, pattern: regex.Pattern[str]) -> list[regex.Match[str]]:
        """Every match, the search bounded by the timeout (collected first so only the search is timed)."""
        return list(pattern.finditer(self.content, timeout=self.timeout))

    def hit(self, detector: str, family: str, confidence: Confidence, masked: str, value: str) -> Hit:
        return Hit(detector, family, confidence, self.part, self.location, masked, digest(detector, value))

    def _tokens(self) -> Tokens:
        if self.tokens is None:
            self.tokens = Tokens.of(self.content, self.timeout)
        return self.tokens

    def has_number(self, digits: int) -> bool:
        """A run of at least this many digits is in the text: without one, a detector of such numbers has nothing to find."""
        return self._tokens().longest_number >= digits

    # -- keywords ---------------------------------------------------------------

    def keywords(self, name: str) -> list[tuple[int, int, str]]:
        """(start, end, term) of every match of a word list, in order."""
        return self._keyword_index(name)[1]

    def _keyword_index(self, name: str) -> tuple[list[int], list[tuple[int, int, str]]]:
        if name not in self._keywords:
            pattern = self.words.pattern_for(name, self._tokens().words)  # None: no term of the list can be in the text
            found = [] if pattern is None else [(m.start(), m.end(), m.group().lower()) for m in self.find(pattern)]
            self._keywords[name] = ([start for start, _, _ in found], found)
        return self._keywords[name]

    def near(self, name: str, start: int, end: int, before: int | None = None, after: int | None = None) -> bool:
        """A term of the list starts within `before` characters before the value or `after` after it (on its line)."""
        return bool(self.terms_near(name, start, end, before, after))

    def terms_near(
        self,
        name: str,
        start: int,
        end: int,
        before: int | None = None,
        after: int | None = None,
        across_lines: bool = False,
    ) -> set[str]:
        starts, found = self._keyword_index(name)
        low = start - (self.window if before is None else before)
        high = end + (self.window if after is None else after)
        first = bisect.bisect_left(starts, low)
        last = bisect.bisect_right(starts, high)
        # A term before a value may sit on the line above (a form's label); one after it must be on its
        # line, unless the caller looks at a passage (record vocabulary) rather than a value.
        return {
            term
            for term_start, term_end, term in found[first:last]
            if term_end <= start or (term_start >= end and (across_lines or "\n" not in self.content[end:term_start]))
        }

    def pattern_near(self, pattern: regex.Pattern[str], start: int, end: int, before: int, after: int) -> bool:
        """A match of the pattern starts within the window around the value."""
        if pattern not in self._matches:
            self._matches[pattern] = [m.start() for m in self.find(pattern)]
        starts = self._matches[pattern]
        index = bisect.bisect_left(starts, start - before)
        return any(not start <= found < end for found in starts[index : bisect.bisect_right(starts, end + after)])

    def anywhere(self, name: str) -> bool:
        return bool(self.keywords(name))

    # -- tables -----------------------------------------------------------------

    def in_column(self, name: str, position: int) -> bool:
        """The value sits in a table column whose header is a term of the list.

        A table is a run of lines that share a separator (tab, as spreadsheets
        are extracted and pasted, or comma, as in CSV); its first line is the
        header. So a column headed "SSN" vouches for every value below it,
        however far down the sheet.
        """
        line = self._line_of(position)
        headers = self._table_headers()
        header = headers[line]
        if header < 0 or header == line:
            return False
        assert self._line_starts is not None
        line_start = self._line_starts[line]
        separator = "\t" if "\t" in self._line(header) else ","
        column = self.content.count(separator, line_start, position)
        return column in self._header_columns(name, header, separator)

    def _line_of(self, position: int) -> int:
        if self._line_starts is None:
            self._line_starts = [0, *(m.end() for m in self.find(_NEWLINE))]
        return bisect.bisect_right(self._line_starts, position) - 1

    def _line(self, index: int) -> str:
        assert self._line_starts is not None
        start = self._line_starts[index]
        end = self._line_starts[index + 1] - 1 if index + 1 < len(self._line_starts) else len(self.content)
        return self.content[start:end]

    def _table_headers(self) -> list[int]:
        if self._headers is None:
            self._line_of(0)
            assert self._line_starts is not None
            headers: list[int] = []
            header, separator = -1, ""
            for index in range(len(self._line_starts)):
                line = self._line(index)
                if header >= 0 and separator in line:
                    headers.append(header)
                    continue
                separator = "\t" if "\t" in line else ("," if "," in line else "")
                header = index if separator else -1
                headers.append(header)
            self._headers = headers
        return self._headers

    def _header_columns(self, name: str, header: int, separator: str) -> frozenset[int]:
        if (name, header) not in self._columns:
            pattern = self.words.pattern(name)
            cells = self._line(header).split(separator)
            self._columns[(name, header)] = frozenset(
                index
                for index, cell in enumerate(cells)
                if pattern is not None and pattern.search(cell, timeout=self.timeout)
            )
        return self._columns[(name, header)]

    def header_of(self, position: int) -> str | None:
        """The header line of the table the position is in (None outside a table, and on the header itself)."""
        line = self._line_of(position)
        header = self._table_headers()[line]
        return None if header < 0 or header == line else self._line(header)

    def tables(self, max_rows: int) -> Iterator[tuple[list[str], list[list[str]]]]:
        """(header cells, rows of cells) of every table, at most max_rows rows each."""
        headers = self._table_headers()
        index = 0
        while index < len(headers):
            header = headers[index]
            end = index + 1
            while end < len(headers) and headers[end] == header:
                end += 1
            if header == index and end > index + 1:
                separator = "\t" if "\t" in self._line(header) else ","
                rows = [self._line(row).split(separator) for row in range(index + 1, min(end, index + 1 + max_rows))]
                yield self._line(header).split(separator), rows
            index = end

    def keyword_context(self, name: str, start: int, end: int) -> bool:
        """A keyword near the value, or heading its column."""
        return self.near(name, start, end) or self.in_column(name, start)


_NEWLINE = regex.compile(r"\n")


def join_words(words: Iterable[str], limit: int = 4) -> str:
    chosen = sorted(set(words))[:limit]
    return ", ".join(f'"{word}"' for word in chosen)
