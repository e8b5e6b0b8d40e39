"""Student records (FERPA): a student ID or a named student with grades, discipline or special-education words."""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text, join_words, last_four
from policies.detectors.records import (
    NAME,
    initials,
    labelled_names,
    table_rows,
    terms_around,
    vocabulary_confidence,
)

FAMILY = "student"
STUDENT_ID = regex.compile(r"(?<![\w\-/.])\d{5,10}(?![\w\-/]|\.\d)")
PERSON = regex.compile(NAME.pattern + r"|\d{5,10}")


def detect(text: Text) -> Iterator[Hit]:
    if not text.anywhere("student_cues"):
        return
    if text.has_number(5):
        yield from _student_ids(text)
    for position, name in labelled_names(text, "student_cues"):
        found = terms_around(text, "student_terms", position)
        named = vocabulary_confidence(len(found), 2, 3)
        if named is not None:
            yield text.hit("student_record", FAMILY, named, f"{join_words(found)} for {initials(name)}", name)
    yield from table_rows(text, "student_record", FAMILY, "student_cues", "student_terms", PERSON)


def _student_ids(text: Text) -> Iterator[Hit]:
    for match in text.find(STUDENT_ID):
        start, end = match.start(), match.end()
        if not (text.near("student_cues", start, end, before=30, after=0) or text.in_column("student_cues", start)):
            continue
        found = terms_around(text, "student_terms", start)
        confidence = Confidence.HIGH if found else Confidence.LOW  # an ID alone is a bus pass, not a record
        words = f" with {join_words(found)}" if found else ""
        yield text.hit(
            "student_id", FAMILY, confidence, f"student ID {last_four(match.group(), 4)}{words}", match.group()
        )
