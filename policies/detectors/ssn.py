"""US Social Security numbers, validated.

Formatted numbers (123-45-6789, 123 45 6789) must pass the SSA's structure:
no area 000, 666 or 900-999, no group 00, no serial 0000, and none of the
numbers printed in advertising and examples. A bare 9-digit number counts
only with an SSN keyword next to it or heading its column.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text

FAMILY = "ssn"
# Published in advertising or as examples and never anyone's own (078-05-1120:
# the Woolworth wallet card; 219-09-9999: an SSA pamphlet; 457-55-5462: an
# advertising campaign; 123-45-6789: the usual placeholder).
EXAMPLE_NUMBERS = frozenset({"078051120", "219099999", "457555462", "123456789"})
FORMATTED = regex.compile(r"(?<![\w\-/.])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w\-/]|\.\d)")
BARE = regex.compile(r"(?<![\w\-/.])\d{9}(?![\w\-/]|\.\d)")
KEYWORD_BEFORE = 40  # "SSN: 123456789" - a bare number needs its keyword right there


def is_valid(digits: str) -> bool:
    """The SSA's structural rules for a 9-digit string."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    return digits not in EXAMPLE_NUMBERS


def mask(digits: str) -> str:
    return f"***-**-{digits[-4:]}"


def detect(text: Text) -> Iterator[Hit]:
    if not text.has_number(4):
        return  # a formatted number ends in four digits, a bare one is nine
    for match in text.find(FORMATTED):
        digits = match.group(1) + match.group(3) + match.group(4)
        if not is_valid(digits):
            continue
        if text.keyword_context("ssn_keywords", match.start(), match.end()):
            confidence = Confidence.HIGH
        elif text.near("negative_context", match.start(), match.end(), before=30, after=0):
            confidence = Confidence.LOW  # "Invoice 512-34-6789"
        elif text.anywhere("ssn_keywords"):
            confidence = Confidence.HIGH  # a list under one "SSN" heading
        else:
            confidence = Confidence.MEDIUM
        yield text.hit("ssn", FAMILY, confidence, mask(digits), digits)
    if not text.has_number(9) or not text.anywhere("ssn_keywords"):
        return  # bare numbers count only near a keyword
    for match in text.find(BARE):
        digits = match.group()
        if not is_valid(digits):
            continue
        if text.near("ssn_keywords", match.start(), match.end(), before=KEYWORD_BEFORE, after=15) or text.in_column(
            "ssn_keywords", match.start()
        ):
            yield text.hit("ssn", FAMILY, Confidence.HIGH, mask(digits), digits)
