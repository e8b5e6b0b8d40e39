"""The editable vocabularies detectors use: config/wordlists/confidential_NAME.txt, each replaceable in config.

Read with the shared reader (policies/text/wordlists.py: one entry a line, `#`
starts a comment, re-read when the file changes). A term matches as a whole
word (no letter on either side, so "SSN" matches in "SSN#:"), case does not
matter, a space in a term matches any run of spaces, line breaks, dashes or
underscores, and a trailing "s" is allowed. `[policies.confidential]
wordlists = { NAME = "/path/to/file.txt" }` replaces the shipped list NAME.

A text is searched only for the terms whose words all occur in it
(`pattern_for`, with the words from tokens.py): a term cannot match without
them, so leaving the others out finds the same matches, and a text with
none of a list's words is not searched for that list at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import regex

from policies.text.wordlists import list_path, read_list

PREFIX = "confidential_"
NAMES = (
    "ssn_keywords",
    "card_keywords",
    "software_context",
    "test_card_numbers",
    "negative_context",
    "routing_keywords",
    "account_keywords",
    "bank_context",
    "drivers_license_keywords",
    "health_cues",
    "health_terms",
    "icd_context",
    "student_cues",
    "student_terms",
    "personnel_cues",
    "personnel_terms",
    "cjis_cues",
    "cjis_terms",
)


def compile_terms(terms: Sequence[str]) -> regex.Pattern[str] | None:
    return _compile(tuple(longest_first(terms))) if terms else None


def longest_first(terms: Sequence[str]) -> list[str]:
    """The order terms are tried in, so "social security number" wins over "social security"."""
    return sorted(dict.fromkeys(terms), key=len, reverse=True)


@lru_cache(maxsize=512)
def _compile(terms: tuple[str, ...]) -> regex.Pattern[str]:
    alternatives = [
        regex.escape(term.lower(), special_only=True, literal_spaces=True).replace(" ", r"[\s_\-]+") for term in terms
    ]
    return regex.compile(r"(?<!\p{L})(?:" + "|".join(alternatives) + r")s?(?!\p{L})", regex.IGNORECASE)


def words_of(term: str) -> frozenset[str] | None:
    """The words (runs of letters) a text must have for the term to match in it.

    None for a term with a character outside ASCII: it is always searched for.
    """
    lowered = term.lower()
    if not lowered.isascii():
        return None
    return frozenset("".join(char if char.isalpha() else " " for char in lowered).split())


class Wordlists:
    """Every list, read once per rule build, each compiled to one pattern on first use."""

    def __init__(self, overrides: Mapping[str, Path] | None = None) -> None:
        overrides = overrides or {}
        self.terms: dict[str, tuple[str, ...]] = {
            name: read_list(list_path(overrides.get(name), f"{PREFIX}{name}.txt")) for name in NAMES
        }
        self._patterns: dict[str, regex.Pattern[str] | None] = {}
        self._needs: dict[str, list[tuple[str, frozenset[str] | None]]] = {}

    def pattern(self, name: str) -> regex.Pattern[str] | None:
        if name not in self._patterns:
            self._patterns[name] = compile_terms(self.terms[name])
        return self._patterns[name]

    def pattern_for(self, name: str, words: frozenset[str]) -> regex.Pattern[str] | None:
        """The list's pattern with only the terms whose words are all in `words` (a text's); None when no term can match."""
        if name not in self._needs:
            self._needs[name] = [(term, words_of(term)) for term in longest_first(self.terms[name])]
        # The same terms in the same order as the whole list's pattern, less those that cannot match.
        possible = tuple(term for term, needed in self._needs[name] if needed is None or needed <= words)
        return _compile(possible) if possible else None
