"""Connecticut driver's license numbers, near their keywords.

Connecticut issues nine digits whose first two encode the holder's birth
month (01-12 for odd birth years, 13-24 for even), so 25-99 cannot start one.
Nine digits are common, so a number counts only with a license word right
before it or heading its column.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text, last_four

FAMILY = "drivers_license"
NINE = regex.compile(r"(?<![\w\-/.])\d{9}(?![\w\-/]|\.\d)")


def is_connecticut_format(digits: str) -> bool:
    return len(digits) == 9 and digits.isdigit() and 1 <= int(digits[:2]) <= 24


def detect(text: Text) -> Iterator[Hit]:
    if not text.has_number(9) or not text.anywhere("drivers_license_keywords"):
        return
    for match in text.find(NINE):
        digits = match.group()
        if not is_connecticut_format(digits):
            continue
        if text.near("drivers_license_keywords", match.start(), match.end(), before=40, after=15) or text.in_column(
            "drivers_license_keywords", match.start()
        ):
            yield text.hit("drivers_license", FAMILY, Confidence.HIGH, last_four(digits, 5), digits)
