"""What the record detectors (health, student, personnel, CJIS) share.

A record is sensitive vocabulary tied to a person: terms near a cue (a
patient, a date of birth, "Employee: Dana Whitfield"), or a table whose
header has a person column and a sensitive column. Vocabulary alone (a
wellness newsletter, a FERPA training notice) is not a record.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text, join_words

SPAN = 300  # characters either side of a cue in which terms count
MAX_ANCHORS = 2000  # cues looked at per segment: bounded work on hostile text
MAX_ROWS = 20000  # table rows looked at per table
NAME = regex.compile(r"\p{Lu}[\p{Ll}'\-]+(?:\s\p{Lu}\.)?(?:\s\p{Lu}[\p{Ll}'\-]+){1,2}")
LABEL_THEN_NAME = regex.compile(r"\s*(?:'s)?\s*[:#\-\u2013]\s*(" + NAME.pattern + ")")


def terms_around(text: Text, terms: str, position: int, span: int = SPAN) -> set[str]:
    """Distinct terms within the span, and in the header of the table the position is in."""
    found = text.terms_near(terms, position, position, span, span, across_lines=True)
    header = text.header_of(position)
    pattern = text.words.pattern(terms)
    if header and pattern is not None:
        found |= {m.group().lower() for m in pattern.finditer(header, timeout=text.timeout)}
    return found


def labelled_names(text: Text, cues: str) -> Iterator[tuple[int, str]]:
    """(position, name) for each "Cue: First Last", e.g. "Employee: Dana Whitfield"."""
    for start, end, _ in text.keywords(cues)[:MAX_ANCHORS]:
        match = LABEL_THEN_NAME.match(text.content, end, timeout=text.timeout)
        if match:
            yield start, match.group(1)


def initials(name: str) -> str:
    return " ".join(f"{word[0]}." for word in name.split())


def vocabulary_confidence(count: int, medium: int, high: int) -> Confidence | None:
    if count >= high:
        return Confidence.HIGH
    if count >= medium:
        return Confidence.MEDIUM
    return None


def table_rows(
    text: Text, detector: str, family: str, cues: str, terms: str, accept: regex.Pattern[str]
) -> Iterator[Hit]:
    """A hit per row of a table with a person column (cue heading) and sensitive columns (term headings).

    The person cell must look like what `accept` describes (a name, an ID),
    so a header that merely mentions "name" vouches for nothing.
    """
    cue_pattern, term_pattern = text.words.pattern(cues), text.words.pattern(terms)
    if cue_pattern is None or term_pattern is None or not (text.anywhere(cues) and text.anywhere(terms)):
        return  # a header cell with a cue or a term is one anywhere in the text: no table can qualify
    for header, rows in text.tables(MAX_ROWS):
        person_columns = [
            i for i, cell in enumerate(header) if len(cell) <= 40 and cue_pattern.search(cell, timeout=text.timeout)
        ]
        found = {
            m.group().lower()
            for i, cell in enumerate(header)
            if i not in person_columns
            for m in term_pattern.finditer(cell, timeout=text.timeout)
        }
        confidence = vocabulary_confidence(len(found), 1, 2)
        if not person_columns or confidence is None:
            continue
        for row in rows:
            cells = [row[i].strip() for i in person_columns if i < len(row)]
            person = next((cell for cell in cells if accept.fullmatch(cell, timeout=text.timeout)), None)
            if person:
                yield text.hit(detector, family, confidence, f"{join_words(found)} for {_mask_person(person)}", person)


def _mask_person(value: str) -> str:
    return f"ID ending {value[-3:]}" if value.isdigit() else initials(value)
