"""Personnel records: evaluations, discipline or pay tied to a named employee."""

from __future__ import annotations

from collections.abc import Iterator

from policies.detectors.base import Hit, Text, join_words
from policies.detectors.records import (
    NAME,
    initials,
    labelled_names,
    table_rows,
    terms_around,
    vocabulary_confidence,
)

FAMILY = "personnel"


def detect(text: Text) -> Iterator[Hit]:
    if not text.anywhere("personnel_terms"):
        return
    for position, name in labelled_names(text, "personnel_cues"):
        found = terms_around(text, "personnel_terms", position)
        confidence = vocabulary_confidence(len(found), 2, 3)
        if confidence is not None:
            yield text.hit("personnel_record", FAMILY, confidence, f"{join_words(found)} for {initials(name)}", name)
    yield from table_rows(text, "personnel_record", FAMILY, "personnel_cues", "personnel_terms", NAME)
