"""One cheap pass over a text: which words it has, and how long its longest number is.

Detectors use it to skip work that cannot find anything. A word list is
only searched for the terms whose words all occur in the text (and not at
all when none can), and a number detector does not search a text whose
digit runs are all shorter than the numbers it looks for. Plain business
text with no digits and no sensitive vocabulary is then read once, here,
instead of once per word list and number pattern.

This must never leave out a word a list's pattern could match, or the skip
would miss data. A word list term matches whole words, case-insensitively
(see wordlists.py), so each of its words appears in the text as a run of
letters with no letter on either side: exactly the runs collected here.
A character outside ASCII ends a run (a word too many only costs a search
that finds nothing), except the three that the `regex` package matches to
an ASCII letter when ignoring case: Kelvin sign, long s and dotted capital
I, read as k, s and i. A term with any character outside ASCII is always
searched for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import regex

PIECE = 1 << 20  # characters read at a time, so a 20 MB attachment never has all its words in one list
_DIGIT_RUN = regex.compile(r"\d+")  # \d as the detectors' patterns mean it, Unicode digits included
_OTHER_DIGIT = regex.compile(r"(?![0-9])\d")  # a digit outside ASCII (Arabic-Indic, Devanagari, ...)
# The only non-ASCII characters `regex` matches to an ASCII letter with IGNORECASE.
_ASCII_LOOKALIKES = (("\u212a", "k"), ("\u017f", "s"), ("\u0130", "i"))
# Byte tables: ASCII letters lower-cased and everything else a space; ASCII digits kept and everything else a space.
_LETTERS = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))
_DIGITS = bytes(c if 48 <= c <= 57 else 32 for c in range(256))


@dataclass(frozen=True)
class Tokens:
    words: frozenset[str]  # every run of ASCII letters, lower-cased, also without a final "s" (plurals)
    longest_number: int  # digits in the longest run of digits

    @classmethod
    def of(cls, content: str, timeout: float) -> Tokens:
        found: set[bytes] = set()
        longest = 0
        for piece in _pieces(content):
            ascii_only = piece.isascii()
            if not ascii_only:
                for lookalike, letter in _ASCII_LOOKALIKES:
                    piece = piece.replace(lookalike, letter)
            data = piece.encode(
                "ascii", "replace"
            )  # any other non-ASCII character becomes "?", which ends a word or number
            found.update(data.translate(_LETTERS).split())
            numbers = data.translate(_DIGITS).split()
            if not ascii_only and _OTHER_DIGIT.search(piece, timeout=timeout):
                numbers = _DIGIT_RUN.findall(piece, timeout=timeout)  # count them as the patterns' \d does
            longest = max(longest, max(map(len, numbers), default=0))
        words = {word.decode("ascii") for word in found}
        words |= {
            word[:-1] for word in words if len(word) > 1 and word.endswith("s")
        }  # a term matches with an "s" added
        return cls(frozenset(words), longest)


def _pieces(content: str) -> Iterator[str]:
    """The content in pieces of about PIECE characters, each cut at a space or line break, never inside a word or number."""
    start = 0
    while start < len(content):
        end = start + PIECE
        if end < len(content):
            cut = max(content.rfind(" ", start, end), content.rfind("\n", start, end))
            end = cut + 1 if cut > start else len(content)  # no space to cut at: read the rest whole
        yield content[start:end]
        start = end
