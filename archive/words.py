"""Words for the search index, cut the same way for indexing and for queries.

One definition on both backends: a word is a run of letters and digits,
compared case- and accent-insensitively ("Résumé" is found by "resume").
SQLite's FTS5 and PostgreSQL's text search then only see words separated by
spaces, so the same query finds the same messages on either.
"""

from __future__ import annotations

import unicodedata

import regex

MAX_WORD = 64  # longer runs are encoded data (base64, hashes), not words anyone searches for
SEPARATOR = "_"  # put between values of one field (two addresses) so a phrase never spans them; never a query word

_WORD = regex.compile(r"[^\W_]+")
_MARKS = regex.compile(r"\p{Mn}+")


def fold(text: str) -> str:
    """Lower case, without accents."""
    if text.isascii():
        return text.lower()
    return _MARKS.sub("", unicodedata.normalize("NFKD", text)).casefold()


def words(text: str | None) -> list[str]:
    if not text:
        return []
    return [word for word in _WORD.findall(fold(text)) if len(word) <= MAX_WORD]
