"""Phrase lists matched with typos allowed, quoting the words they matched.

Text is first reduced to its words, lower-cased, accents and apostrophes
dropped ("Don't  BREAK the chain!" reads "dont break the chain"), so a
phrase never has to spell out punctuation or spacing. A phrase line is
written in the same plain words, with a few marks:

    forward (this|it) [message|email] to {n} (people|friends)

- `(a|b)`  one of these (each may be several words)
- `[a|b]`  optionally one of these
- `{n}`    a number, in digits or words ("10", "ten", "twenty five")
- `word*`  the word and any ending ("forward*": forwarded, forwarding)
- `re:...` the rest of the line is a regular expression on the reduced text

Words of five letters or more may have one typo, nine letters or more two
(the `regex` module's fuzzy matching), so "forwrd this to 10 people" is
still found; common short words never do ("youre" is not "your").

To stay fast, a phrase is only tried around the places where one of its two
most telling words (or choices, such as "(people|friends)") appears spelled
exactly: a phrase with both of those misspelled is missed.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate
from pathlib import Path

import regex

from policies.wordlists import read_list

SEARCH_TIMEOUT = 2.0  # seconds for one search; past it `regex` raises TimeoutError and the rule fails closed
MAX_CHARS = 200_000  # characters of a message's text that are read; chain letters and abuse are short
QUOTE_CHARS = 160  # the longest quotation a finding shows
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
                "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty",
                "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand", "dozen", "several")
_ONE_NUMBER = r"(?:\d+|" + "|".join(NUMBER_WORDS) + ")"
NUMBER = rf"{_ONE_NUMBER}(?: {_ONE_NUMBER})?"
COMMON_WORDS = frozenset({  # too frequent to narrow a search down
    "the", "and", "you", "for", "are", "was", "not", "but", "all", "any", "can", "our", "his", "her", "who", "how",
    "why", "one", "out", "get", "has", "had", "him", "she", "its", "may", "now", "see", "way", "own", "new", "say",
    "this", "that", "with", "your", "from", "have", "will", "they", "them", "their", "there", "then", "than", "what",
    "when", "were", "been", "into", "only", "also", "just", "more", "some", "such", "where", "every", "each", "here",
    "about", "would", "could", "should", "which", "other", "after", "before", "these", "those", "being", "over",
    "very", "like"})
EXACT_WORDS = COMMON_WORDS | {  # one letter away from another common word: never fuzzy ("youre" is not "your")
    "youre", "youll", "youve", "theyre", "dont", "cant", "wont", "didnt", "doesnt", "isnt", "arent", "wasnt",
    "shouldnt", "wouldnt", "couldnt", "never", "always"}
ANCHOR_ELEMENTS = 2  # a phrase is tried near either of its two most telling words (or choices)

_WORD = regex.compile(r"[^\W_]+(?:['’`][^\W_]+)*")
_SYNTAX = regex.compile(r"\(([^()\[\]]*)\)|\[([^()\[\]]*)\]|\{n\}|[^\s()\[\]{}|]+")
_QUOTE_OPEN, _QUOTE_CLOSE = "“«„", "”»"


def reduce_word(word: str) -> str:
    """A word as phrases compare it: lower case, no accents, no apostrophes."""
    if word.isascii():
        return word.lower().replace("'", "").replace("`", "")
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and c not in "'’`").casefold()


class Text:
    """A text and its reduced form, with the way back from one to the other for quoting."""

    def __init__(self, original: str) -> None:
        self.original = original[:MAX_CHARS].replace("\r\n", "\n")
        if self.original.isascii():  # the common case, done in C: lower() keeps every offset
            self.words = [w.replace("'", "").replace("`", "") for w in _WORD.findall(self.original.lower(), timeout=SEARCH_TIMEOUT)]
        else:
            self.words = [reduce_word(w) or "_" for w in _WORD.findall(self.original, timeout=SEARCH_TIMEOUT)]
        self.normal = " ".join(self.words)

    @cached_property
    def _starts(self) -> list[int]:
        """Where each word starts in `normal`."""
        return [0, *accumulate(len(word) + 1 for word in self.words)][: len(self.words)]

    @cached_property
    def _index(self) -> dict[str, list[int]]:
        """Each distinct word and the positions (word numbers) where it occurs."""
        index: dict[str, list[int]] = {}
        for at, word in enumerate(self.words):
            index.setdefault(word, []).append(at)
        return index

    def positions(self, word: str) -> list[int]:
        """Where a word occurs; "stem*" finds every word that starts with the stem."""
        if not word.endswith("*"):
            return self._index.get(word, [])
        stem = word[:-1]
        return [at for candidate, places in self._index.items() if candidate.startswith(stem) for at in places]

    def chars(self, first: int, last: int) -> tuple[int, int]:
        """The span of `normal` from the start of word `first` to the end of word `last`."""
        return self._starts[first], self._starts[last] + len(self.words[last])

    @cached_property
    def _spans(self) -> list[tuple[int, int]]:
        """Each word's place in `original` (only needed to quote a hit)."""
        return [match.span() for match in _WORD.finditer(self.original, timeout=SEARCH_TIMEOUT)]

    def place(self, start: int, end: int) -> tuple[int, int]:
        """Where a span of `normal` lies in `original`."""
        first = max(bisect.bisect_right(self._starts, start) - 1, 0)
        last = max(bisect.bisect_right(self._starts, max(start, end - 1)) - 1, 0)
        return self._spans[first][0], self._spans[last][1]

    def quote(self, start: int, end: int) -> str:
        """The original words at a place, on one line."""
        words = " ".join(self.original[start:end].split())
        return words if len(words) <= QUOTE_CHARS else words[: QUOTE_CHARS - 1] + "…"

    def in_quotation(self, start: int, end: int) -> bool:
        """Whether a place in `original` sits between quotation marks in its paragraph (a mention, not a use)."""
        paragraph_start = self.original.rfind("\n\n", 0, start) + 1
        before = self.original[paragraph_start:start]
        after_end = self.original.find("\n\n", end)
        after = self.original[end: after_end if after_end != -1 else len(self.original)]
        opened = before.count('"') % 2 == 1 or _last(before, _QUOTE_OPEN) > _last(before, _QUOTE_CLOSE)
        closed = '"' in after or any(c in after for c in _QUOTE_CLOSE)
        return opened and closed


def _last(text: str, chars: str) -> int:
    return max(text.rfind(c) for c in chars)


@dataclass(frozen=True)
class Hit:
    entry: str  # the list line that matched
    quote: str  # the words of the message it matched
    start: int  # the place in the original text
    end: int


@dataclass(frozen=True)
class Phrase:
    entry: str
    pattern: regex.Pattern[str]
    anchors: tuple[str, ...] | None  # words one of which must appear ("stem*": a word starting so); None: try everywhere
    reach: int  # the most words a match spans

    def search(self, text: Text) -> Hit | None:
        for start, end in self._windows(text):
            match = self.pattern.search(text.normal, start, end, timeout=SEARCH_TIMEOUT)
            if match and match.end() > match.start():
                where = text.place(*match.span())
                return Hit(self.entry, text.quote(*where), *where)
        return None

    def _windows(self, text: Text) -> list[tuple[int, int]]:
        """Stretches of `text.normal` around each anchor, wide enough for a whole match, merged."""
        if self.anchors is None:
            return [(0, len(text.normal))]
        found = sorted(at for anchor in self.anchors for at in text.positions(anchor))
        spans: list[tuple[int, int]] = []  # in words
        for at in found:
            first, last = max(at - self.reach, 0), min(at + self.reach, len(text.words) - 1)
            if spans and first <= spans[-1][1] + 1:
                spans[-1] = (spans[-1][0], last)
            else:
                spans.append((first, last))
        return [text.chars(first, last) for first, last in spans]


@dataclass(frozen=True)
class PhraseList:
    source: str
    phrases: tuple[Phrase, ...]

    def find(self, text: Text) -> list[Hit]:
        """The first match of every phrase that matches, in the order of the text."""
        hits = (phrase.search(text) for phrase in self.phrases)
        return sorted((hit for hit in hits if hit is not None), key=lambda hit: hit.start)

    def __len__(self) -> int:
        return len(self.phrases)


def load_phrases(path: Path) -> PhraseList:
    """A phrase list file, compiled (and cached until the file changes); ValueError names a bad line."""
    entries = read_list(path)
    return _compiled(str(path), entries)


@lru_cache(maxsize=64)
def _compiled(source: str, entries: tuple[str, ...]) -> PhraseList:
    return PhraseList(source, tuple(compile_phrase(entry, source) for entry in entries))


def compile_phrase(entry: str, source: str = "phrase list") -> Phrase:
    if entry.startswith("re:"):
        try:
            return Phrase(entry, regex.compile(entry[3:].strip()), None, 0)
        except regex.error as exc:
            raise ValueError(f"{source}: {entry!r} is not a valid regular expression ({exc})") from None
    stray = [c for c in _SYNTAX.sub(" ", entry) if c in "()[]{}|"]
    if stray:
        raise ValueError(f"{source}: {entry!r} has a stray {stray[0]!r}: write choices as (a|b) or [a|b]")
    pieces: list[tuple[str, bool]] = []  # (pattern, optional)
    elements: list[list[str]] = []  # for each word or choice that must match, the words that could show it
    reach = 0
    for token in _SYNTAX.finditer(entry):
        choices, optional_choices = token.group(1), token.group(2)
        if choices is not None or optional_choices is not None:
            alternatives = [a.split() for a in (choices if choices is not None else optional_choices).split("|")]
            if not all(alternatives):
                raise ValueError(f"{source}: {entry!r} has an empty choice in {token.group()!r}")
            alternatives = [[w for token in words for w in words_of(token)] for words in alternatives]
            if not all(alternatives):
                raise ValueError(f"{source}: {entry!r} has a choice with no words in {token.group()!r}")
            pieces.append(("(?:" + "|".join(" ".join(_word(w) for w in words) for words in alternatives) + ")",
                           optional_choices is not None))
            reach += max(len(words) for words in alternatives)
            if choices is not None:
                elements.append([max(words, key=_telling) for words in alternatives])
        elif token.group() == "{n}":
            pieces.append((NUMBER, False))
            reach += 2
        else:
            for word in words_of(token.group()):  # "e-mail" is two words, as in the text; "$1" is "1"
                pieces.append((_word(word), False))
                reach += 1
                elements.append([word])
    if not any(not optional for _, optional in pieces):
        raise ValueError(f"{source}: {entry!r} has nothing that must match")
    body, started = "", False
    for pattern, optional in pieces:
        if optional:
            body += f"(?: {pattern})?" if started else f"(?:{pattern} )?"
        else:
            body += f" {pattern}" if started else pattern
            started = True
    compiled = regex.compile(rf"(?<!\w)(?:{body})(?!\w)")
    return Phrase(entry, compiled, _anchors(elements), reach + 2)  # + 2: a typo may split a word


def _telling(word: str) -> int:
    """How well a word narrows a search down: its length; 1 for a common word; 0 for one too short to look for."""
    stem = word.rstrip("*")
    return 0 if len(stem) < 3 else 1 if stem in COMMON_WORDS else len(stem)


def _anchors(elements: list[list[str]]) -> tuple[str, ...] | None:
    """The words of the most telling elements; every match has one of them (unless misspelled)."""
    scored = sorted(((min(_telling(w) for w in words), words) for words in elements), key=lambda pair: -pair[0])
    if not scored or scored[0][0] == 0:
        return None
    best = scored[0][0]
    chosen = [words for score, words in scored[:ANCHOR_ELEMENTS] if score > 1 or best == 1]  # common words only if nothing better
    return tuple(dict.fromkeys(w for words in chosen for w in words)) or None


def words_of(token: str) -> list[str]:
    """The reduced words of one token of a phrase line, the last keeping a closing `*`."""
    words = [reduce_word(w) for w in _WORD.findall(token)]
    if words and token.endswith("*"):
        words[-1] += "*"
    return [w for w in words if w.rstrip("*")]


def _word(word: str) -> str:
    """One reduced word of a phrase: exact when short, a typo allowed from five letters, two from nine."""
    wildcard = word.endswith("*")
    stem = word.rstrip("*")
    pattern = regex.escape(stem)
    if len(stem) >= 9 and stem not in EXACT_WORDS:
        pattern = f"(?:{pattern}){{e<=2}}"
    elif len(stem) >= 5 and stem not in EXACT_WORDS:
        pattern = f"(?:{pattern}){{e<=1}}"
    return pattern + (r"\w*" if wildcard else "")
