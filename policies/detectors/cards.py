"""Payment card numbers: 13-19 digits that pass Luhn and fall in an issuer's range.

Confidence rises with a card word or an expiry date close by; the numbers
networks publish for testing never count as high, and next to software words
(an API guide, a sandbox) they are low.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text

FAMILY = "card"
CONTIGUOUS = regex.compile(r"(?<![\w\-/.])\d{13,19}(?![\w\-/]|\.\d)")
GROUPED = regex.compile(r"(?<![\w\-/.])\d{4}(?P<sep>[ \-])\d{2,6}(?:(?P=sep)\d{2,6}){1,3}(?![\w\-/]|\.\d)")
EXPIRY = regex.compile(r"(?<![\d/])(?:0[1-9]|1[0-2])\s?/\s?(?:20)?\d{2}(?![\d/])")
# (brand, prefixes as (low, high) of the same length, allowed lengths)
ISSUERS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[int, ...]], ...] = (
    ("Visa", (("4", "4"),), (13, 16, 19)),
    ("Mastercard", (("51", "55"), ("2221", "2720")), (16,)),
    ("American Express", (("34", "34"), ("37", "37")), (15,)),
    ("Discover", (("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")), (16, 17, 18, 19)),
    ("Diners Club", (("300", "305"), ("36", "36"), ("38", "39")), (14, 15, 16, 17, 18, 19)),
    ("JCB", (("3528", "3589"),), (16, 17, 18, 19)),
    ("UnionPay", (("62", "62"),), (16, 17, 18, 19)),
    (
        "Maestro",
        (
            ("5018", "5018"),
            ("5020", "5020"),
            ("5038", "5038"),
            ("5893", "5893"),
            ("6304", "6304"),
            ("6759", "6759"),
            ("6761", "6763"),
        ),
        (13, 14, 15, 16, 17, 18, 19),
    ),
)


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def issuer(digits: str) -> str | None:
    for brand, ranges, lengths in ISSUERS:
        if len(digits) in lengths and any(low <= digits[: len(low)] <= high for low, high in ranges):
            return brand
    return None


def mask(digits: str) -> str:
    return f"**** **** **** {digits[-4:]}"


def detect(text: Text) -> Iterator[Hit]:
    if not text.has_number(4):
        return  # a card number is 13-19 digits, or groups that start with four
    test_numbers = frozenset(text.words.terms.get("test_card_numbers", ()))
    for match in [*text.find(CONTIGUOUS), *text.find(GROUPED)]:
        digits = "".join(ch for ch in match.group() if ch.isdigit())
        if not 13 <= len(digits) <= 19 or not luhn(digits):
            continue
        brand = issuer(digits)
        if brand is None:
            continue
        start, end = match.start(), match.end()
        if digits in test_numbers:
            confidence = Confidence.LOW if text.anywhere("software_context") else Confidence.MEDIUM
        elif text.keyword_context("card_keywords", start, end) or text.pattern_near(EXPIRY, start, end, 60, 60):
            confidence = Confidence.HIGH
        elif text.near("negative_context", start, end, before=30, after=0):
            confidence = Confidence.LOW  # "Order 4539 1488 0343 6467"
        else:
            confidence = Confidence.MEDIUM
        yield text.hit("payment_card", FAMILY, confidence, f"{brand} {mask(digits)}", digits)
