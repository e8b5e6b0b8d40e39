"""Criminal justice information (FBI CJIS Security Policy): CJIS/NCIC vocabulary beside a person's identifying fields."""

from __future__ import annotations

from collections.abc import Iterator

from policies.detectors.base import Confidence, Hit, Text, join_words
from policies.detectors.records import MAX_ANCHORS, SPAN

FAMILY = "cjis"


def detect(text: Text) -> Iterator[Hit]:
    if not text.anywhere("cjis_cues"):
        return
    best_cues: set[str] = set()
    best_terms: set[str] = set()
    for start, end, term in text.keywords("cjis_terms")[:MAX_ANCHORS]:
        cues = text.terms_near("cjis_cues", start, end, SPAN, SPAN, across_lines=True)
        if len(cues) > len(best_cues) or (len(cues) == len(best_cues) and cues):
            terms = text.terms_near("cjis_terms", start, end, SPAN, SPAN, across_lines=True) | {term}
            if (len(cues), len(terms)) > (len(best_cues), len(best_terms)):
                best_cues, best_terms = cues, terms
    if len(best_cues) < 2:
        return  # CJIS words without a person's fields: a training notice, a policy
    confidence = Confidence.HIGH if len(best_terms) >= 2 else Confidence.MEDIUM
    masked = f"terms {join_words(best_terms)} with {join_words(best_cues)}"
    yield text.hit("cjis", FAMILY, confidence, masked, f"{text.part}:{text.location}")
