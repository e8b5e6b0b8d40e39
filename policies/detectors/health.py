"""Health information: ICD-10 codes beside medical words, and diagnosis or treatment vocabulary tied to a person."""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text, join_words
from policies.detectors.records import (
    MAX_ANCHORS,
    NAME,
    table_rows,
    terms_around,
    vocabulary_confidence,
)

FAMILY = "health"
# ICD-10-CM: a letter (not U), two characters, then after the dot up to four more.
ICD10_DOTTED = regex.compile(r"(?<![\w.\-])[A-TV-Z]\d[0-9AB]\.[0-9A-TV-Z]{1,4}(?![\w\-]|\.\w)")
ICD10_BARE = regex.compile(r"(?<![\w.\-])[A-TV-Z]\d[0-9AB][0-9A-TV-Z]{0,4}(?![\w.\-])")
CODE_SPAN = 150
PERSON = regex.compile(NAME.pattern + r"|\d{4,12}")


def detect(text: Text) -> Iterator[Hit]:
    yield from _codes(text)
    yield from _vocabulary(text)
    yield from table_rows(text, "health_record", FAMILY, "health_cues", "health_terms", PERSON)


def _codes(text: Text) -> Iterator[Hit]:
    if not text.has_number(1):
        return  # every code has a digit
    if not (text.anywhere("icd_context") or text.anywhere("health_cues") or text.anywhere("health_terms")):
        return
    for match in text.find(ICD10_DOTTED):
        start, end = match.start(), match.end()
        # A diagnosis word or a patient close by: "section C40.1" of a treatment-plant permit is no diagnosis.
        if (
            text.near("icd_context", start, end, CODE_SPAN, CODE_SPAN)
            or text.near("health_cues", start, end, CODE_SPAN, CODE_SPAN)
            or text.in_column("health_terms", start)
        ):
            yield text.hit("icd10_code", FAMILY, Confidence.HIGH, f"ICD-10 {match.group()}", match.group())
    for match in text.find(ICD10_BARE):
        # Undotted codes (E119), as claims files write them, only under a diagnosis heading.
        if text.in_column("health_terms", match.start()) and regex.search(r"\d", match.group()[1:]):
            yield text.hit("icd10_code", FAMILY, Confidence.HIGH, f"ICD-10 {match.group()}", match.group())


def _vocabulary(text: Text) -> Iterator[Hit]:
    best: set[str] = set()
    for start, _, _ in text.keywords("health_cues")[:MAX_ANCHORS]:
        found = terms_around(text, "health_terms", start)
        if len(found) > len(best):
            best = found
    confidence = vocabulary_confidence(len(best), 2, 3)
    if confidence is not None:
        yield text.hit("health_terms", FAMILY, confidence, f"terms {join_words(best)}", f"{text.part}:{text.location}")
