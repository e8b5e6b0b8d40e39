"""Bank routing numbers (ABA checksum) and bank account numbers, near their keywords.

A routing number is nine digits with a Federal Reserve prefix and the ABA
checksum; it counts only next to a routing word. An account number is 6-17
digits after an account word, and high confidence only with a bank beside
it (a routing number, "checking", "direct deposit"): a water-bill account
number is low.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from policies.detectors.base import Confidence, Hit, Text, last_four

FAMILY = "bank"
NINE = regex.compile(r"(?<![\w\-/.])\d{9}(?![\w\-/]|\.\d)")
ACCOUNT = regex.compile(r"(?<![\w\-/.])\d{6,17}(?![\w\-/]|\.\d)")
ROUTING_PREFIXES = tuple(range(13)) + tuple(range(21, 33)) + tuple(range(61, 73)) + (80,)
BANK_WINDOW = 150


def is_routing_number(digits: str) -> bool:
    if len(digits) != 9 or not digits.isdigit() or int(digits[:2]) not in ROUTING_PREFIXES or digits == "000000000":
        return False
    d = [int(ch) for ch in digits]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 == 0


def _routing_keyword(text: Text, start: int, end: int) -> bool:
    return text.near("routing_keywords", start, end, before=40, after=15) or text.in_column("routing_keywords", start)


def detect(text: Text) -> Iterator[Hit]:
    routing_at: list[int] = []
    if text.has_number(9) and (text.anywhere("routing_keywords") or text.anywhere("bank_context")):
        for match in text.find(NINE):
            digits = match.group()
            if not is_routing_number(digits):
                continue
            if _routing_keyword(text, match.start(), match.end()):
                confidence = Confidence.HIGH
            elif text.near("bank_context", match.start(), match.end(), before=40, after=15):
                confidence = Confidence.MEDIUM
            else:
                continue
            routing_at.append(match.start())
            yield text.hit("routing_number", FAMILY, confidence, f"*****{digits[-4:]}", digits)
    if not text.has_number(6) or not text.anywhere("account_keywords"):
        return
    for match in text.find(ACCOUNT):
        start, end = match.start(), match.end()
        if start in routing_at:
            continue
        if not (
            text.near("account_keywords", start, end, before=40, after=0) or text.in_column("account_keywords", start)
        ):
            continue
        digits = match.group()
        near_routing = any(abs(at - start) <= BANK_WINDOW * 2 for at in routing_at)
        if (
            near_routing
            or text.near("bank_context", start, end, BANK_WINDOW, BANK_WINDOW)
            or text.in_column("bank_context", start)
        ):
            confidence = Confidence.HIGH
        else:
            confidence = Confidence.LOW  # an account, but nothing says a bank's: a utility or library account
        yield text.hit("bank_account", FAMILY, confidence, last_four(digits, 4), digits)
