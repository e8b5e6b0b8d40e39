"""Detectors of confidential data: one module per family, each validating what it finds.

`scan(texts)` runs every detector over every located text and returns the
hits: detector, confidence, location and a masked value, never the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from policies.detectors import bank, cards, cjis, drivers_license, health, personnel, ssn, student
from policies.detectors.base import Confidence, Hit, Text
from policies.detectors.wordlists import Wordlists

Detector = Callable[[Text], Iterator[Hit]]

DETECTORS: tuple[Detector, ...] = (
    ssn.detect,
    cards.detect,
    bank.detect,
    drivers_license.detect,
    health.detect,
    student.detect,
    personnel.detect,
    cjis.detect,
)

# family -> what it is called in a reason, as (one, many)
FAMILIES: dict[str, tuple[str, str]] = {
    "ssn": ("Social Security number", "Social Security numbers"),
    "card": ("payment card number", "payment card numbers"),
    "bank": ("bank routing or account number", "bank routing and account numbers"),
    "drivers_license": ("driver's license number", "driver's license numbers"),
    "health": ("item of health information", "items of health information"),
    "student": ("student record (FERPA)", "student records (FERPA)"),
    "personnel": ("personnel record", "personnel records"),
    "cjis": ("passage of criminal justice information (CJIS)", "passages of criminal justice information (CJIS)"),
}


def scan(texts: Iterable[Text]) -> list[Hit]:
    return [hit for text in texts for detect in DETECTORS for hit in detect(text)]


__all__ = ["DETECTORS", "FAMILIES", "Confidence", "Hit", "Text", "Wordlists", "scan"]
