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
exactly: a phrase with both of those misspelled is missed. And before any
search, the message's distinct words (split once per message, in C, and
shared by the rules) must have everything the phrase needs: each word or
choice it must match, exactly for a word that takes no typo, and for one
that does at least the part a typo cannot have reached (a word with one
typo still begins with its first half or ends with its second). A `re:`
line needs the literal words of its expression. Most phrases stop at a set
lookup, and a window around an anchor whose words lack what the phrase
needs is not searched. These checks never rule out a match the search
would find: they only spare the fuzzy search where it cannot succeed.
"""

from __future__ import annotations

import bisect
import operator
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate, pairwise
from pathlib import Path
from re import _constants as sre  # type: ignore[attr-defined]  # the standard library's own regex parser reads
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the literal words of `re:` lines
from typing import Any, NamedTuple

import regex

from policies.text.wordlists import read_list

SEARCH_TIMEOUT = 2.0  # seconds for one search; past it `regex` raises TimeoutError and the rule fails closed
MAX_CHARS = 200_000  # characters of a message's text that are read; chain letters and abuse are short
QUOTE_CHARS = 160  # the longest quotation a finding shows
NUMBER_WORDS = (
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "dozen",
    "several",
)
_ONE_NUMBER = r"(?:\d+|" + "|".join(NUMBER_WORDS) + ")"
NUMBER = rf"{_ONE_NUMBER}(?: {_ONE_NUMBER})?"
COMMON_WORDS = frozenset(
    {  # too frequent to narrow a search down
        "the",
        "and",
        "you",
        "for",
        "are",
        "was",
        "not",
        "but",
        "all",
        "any",
        "can",
        "our",
        "his",
        "her",
        "who",
        "how",
        "why",
        "one",
        "out",
        "get",
        "has",
        "had",
        "him",
        "she",
        "its",
        "may",
        "now",
        "see",
        "way",
        "own",
        "new",
        "say",
        "this",
        "that",
        "with",
        "your",
        "from",
        "have",
        "will",
        "they",
        "them",
        "their",
        "there",
        "then",
        "than",
        "what",
        "when",
        "were",
        "been",
        "into",
        "only",
        "also",
        "just",
        "more",
        "some",
        "such",
        "where",
        "every",
        "each",
        "here",
        "about",
        "would",
        "could",
        "should",
        "which",
        "other",
        "after",
        "before",
        "these",
        "those",
        "being",
        "over",
        "very",
        "like",
    }
)
EXACT_WORDS = COMMON_WORDS | {  # one letter away from another common word: never fuzzy ("youre" is not "your")
    "youre",
    "youll",
    "youve",
    "theyre",
    "dont",
    "cant",
    "wont",
    "didnt",
    "doesnt",
    "isnt",
    "arent",
    "wasnt",
    "shouldnt",
    "wouldnt",
    "couldnt",
    "never",
    "always",
}
ANCHOR_ELEMENTS = 2  # a phrase is tried near either of its two most telling words (or choices)

_WORD = regex.compile(r"[^\W_]+(?:['’`][^\W_]+)*")
_WORD_CHAR = regex.compile(r"[^\W_]")
_NON_ASCII = regex.compile(r"[^\x00-\x7f]")
_SPACE_FOR = {
    code: " " for code in range(128) if not chr(code).isalnum()
}  # in ASCII text all but letters and digits part words
_SYNTAX = regex.compile(r"\(([^()\[\]]*)\)|\[([^()\[\]]*)\]|\{n\}|[^\s()\[\]{}|]+")
_QUOTE_OPEN, _QUOTE_CLOSE = "“«„", "”»"
_REGEX_MODULE_ONLY = regex.compile(r"\{(?!\d*(?:,\d*)?\})|\[\[:")  # fuzzy {e<=1}, POSIX classes: read otherwise by `re`
_NOT_IN_WORDS = regex.compile(r"[^\w ]|_")
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)

Clue = tuple[str, ...]  # pieces of words, one of which the text must show (see Text.shows)


class Choice(NamedTuple):
    """What one way of matching needs: whole words, and clues to words that may have typos."""

    words: frozenset[str]
    clues: tuple[Clue, ...] = ()

    @classmethod
    def of(cls, clues: Iterable[Clue]) -> Choice:
        """A choice from clues; those that are one whole word (" word ") are looked up as words, in a set."""
        words: set[str] = set()
        others: list[Clue] = []
        for clue in clues:
            whole = len(clue) == 1 and clue[0][:1] == clue[0][-1:] == " " and clue[0].count(" ") == 2
            if whole:
                words.add(clue[0][1:-1])
            else:
                others.append(clue)
        return cls(frozenset(words), tuple(others))


Need = tuple[Choice, ...]  # choices one of which must hold: every match of a phrase meets each of its needs


def reduce_word(word: str) -> str:
    """A word as phrases compare it: lower case, no accents, no apostrophes."""
    if word.isascii():
        return word.lower().replace("'", "").replace("`", "")
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and c not in "'’`").casefold()


def ascii_words(text: str) -> list[str] | None:
    """The runs of letters and digits (what `_WORD_CHAR` matches) of the lower-cased text, found in C; None when a
    word has a non-ASCII letter or digit."""
    plain = _ascii_punctuation(text)
    return None if plain is None else plain.lower().translate(_SPACE_FOR).split()


def split_words(text: str) -> list[str]:
    """The reduced words of a text in order: what `_WORD` finds, each `reduce_word`ed.

    When every letter and digit is ASCII this is done with str methods (in C), which
    are many times faster than the regular expression and split words the same way.
    """
    plain = _ascii_punctuation(text)
    if plain is None:
        return [reduce_word(w) or "_" for w in _WORD.findall(text, timeout=SEARCH_TIMEOUT)]
    lowered = plain.lower()
    if "'" in lowered or "`" in lowered:
        lowered = _join_apostrophes(lowered)
    return lowered.translate(_SPACE_FOR).split()


def _ascii_punctuation(text: str) -> str | None:
    """The text with its non-ASCII punctuation made ASCII ("’" an apostrophe, anything else a space), or None when
    a word has a non-ASCII letter or digit. Only characters between words change, so words split as before."""
    if text.isascii():
        return text
    for char in set(_NON_ASCII.findall(text, timeout=SEARCH_TIMEOUT)):
        if _WORD_CHAR.match(char):
            return None
        text = text.replace(char, "'" if char == "’" else " ")
    return text


def _join_apostrophes(lowered: str) -> str:
    """ "don't" as the one word "dont": an apostrophe between two letters or digits goes, any other parts words."""
    pieces = lowered.replace("`", "'").split("'")
    joined = [pieces[0]]
    for before, after in pairwise(pieces):
        joined.append("" if before[-1:].isalnum() and after[:1].isalnum() else " ")
        joined.append(after)
    return "".join(joined)


class Text:
    """A text and its reduced form, with the way back from one to the other for quoting."""

    def __init__(self, original: str) -> None:
        self.original = original[:MAX_CHARS].replace("\r\n", "\n")
        self.words = split_words(self.original)
        self._shown: dict[str, bool] = {}

    @cached_property
    def normal(self) -> str:
        """The words, one space between: what phrases are matched against (only built when one is searched for)."""
        return " ".join(self.words)

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """Each distinct word."""
        return frozenset(self.words)

    @cached_property
    def _lexicon(self) -> str:
        """Each distinct word once, between spaces: where the start or end of a word is looked for."""
        return f" {' '.join(self.vocabulary)} "

    def shows(self, piece: str) -> bool:
        """Whether one of the words is " word " (spaces around), begins with " wo", ends with "rd " or has "or" in it."""
        found = self._shown.get(piece)
        if found is None:
            word = piece.strip(" ")
            found = word in self.vocabulary if piece == f" {word} " else piece in self._lexicon
            self._shown[piece] = found
        return found

    def meets(self, need: Need) -> bool:
        """Whether one of a need's choices holds: its whole words are words of the text, and its clues are shown."""
        return any(
            choice.words <= self.vocabulary and all(any(self.shows(piece) for piece in clue) for clue in choice.clues)
            for choice in need
        )

    @cached_property
    def _starts(self) -> list[int]:
        """Where each word starts in `normal`: the lengths of the words before it, and a space after each."""
        lengths_before = accumulate(map(len, self.words), initial=0)
        return list(map(operator.add, lengths_before, range(len(self.words))))  # in C: no Python step per word

    @cached_property
    def _padded(self) -> str:
        return f" {self.normal} "

    def positions(self, word: str) -> list[int]:
        """Where a word occurs (word numbers); "stem*" finds every word that starts with the stem."""
        probe = f" {word[:-1]}" if word.endswith("*") else f" {word} "
        if not self.shows(probe):
            return []
        found = []
        at = self._padded.find(probe)  # where the word starts in `normal`, as `_padded` has a space more in front
        while at != -1:
            found.append(bisect.bisect_left(self._starts, at))
            at = self._padded.find(probe, at + 1)
        return found

    def chars(self, first: int, last: int) -> tuple[int, int]:
        """The span of `normal` from the start of word `first` to the end of word `last`."""
        return self._starts[first], self._starts[last] + len(self.words[last])

    def _span(self, number: int) -> tuple[int, int]:
        """Where word `number` lies in `original` (only needed to quote a hit): the words' places are found from the
        start of the text as far as needed, not for the whole text."""
        spans = self._spans
        if len(spans) <= number:
            for match in _WORD.finditer(self.original, spans[-1][1] if spans else 0, timeout=SEARCH_TIMEOUT):
                spans.append(match.span())
                if len(spans) > number:
                    break
        return spans[number]

    @cached_property
    def _spans(self) -> list[tuple[int, int]]:
        return []

    def place(self, start: int, end: int) -> tuple[int, int]:
        """Where a span of `normal` lies in `original`."""
        first = max(bisect.bisect_right(self._starts, start) - 1, 0)
        last = max(bisect.bisect_right(self._starts, max(start, end - 1)) - 1, 0)
        return self._span(first)[0], self._span(last)[1]

    def quote(self, start: int, end: int) -> str:
        """The original words at a place, on one line."""
        words = " ".join(self.original[start:end].split())
        return words if len(words) <= QUOTE_CHARS else words[: QUOTE_CHARS - 1] + "…"

    def in_quotation(self, start: int, end: int) -> bool:
        """Whether a place in `original` sits between quotation marks in its paragraph (a mention, not a use)."""
        paragraph_start = self.original.rfind("\n\n", 0, start) + 1
        before = self.original[paragraph_start:start]
        after_end = self.original.find("\n\n", end)
        after = self.original[end : after_end if after_end != -1 else len(self.original)]
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
    anchors: (
        tuple[str, ...] | None
    )  # words one of which must appear ("stem*": a word starting so); None: try everywhere
    reach: int  # the most words a match spans
    needs: tuple[Need, ...] = ()  # what every match has among its words

    def could_match(self, text: Text) -> bool:
        """Whether the text's words have what every match needs; False rules the phrase out without a search."""
        return all(text.meets(need) for need in self.needs)

    def search(self, text: Text) -> Hit | None:
        if not self.could_match(text):
            return None
        for start, end in self._windows(text):
            if self.anchors is not None and not self._could_match_within(f" {text.normal[start:end]} "):
                continue
            match = self.pattern.search(text.normal, start, end, timeout=SEARCH_TIMEOUT)
            if match and match.end() > match.start():
                where = text.place(*match.span())
                return Hit(self.entry, text.quote(*where), *where)
        return None

    @cached_property
    def _anchor_words(self) -> frozenset[str]:
        return frozenset(anchor for anchor in self.anchors or () if not anchor.endswith("*"))

    @cached_property
    def _anchor_stems(self) -> tuple[str, ...]:
        return tuple(anchor for anchor in self.anchors or () if anchor.endswith("*"))

    def _could_match_within(self, stretch: str) -> bool:
        """`could_match` for the words of one window (" word word "), searched in C: most windows are ruled out."""
        return all(
            any(
                all(f" {word} " in stretch for word in choice.words)
                and all(any(piece in stretch for piece in clue) for clue in choice.clues)
                for choice in need
            )
            for need in self.needs
        )

    def _windows(self, text: Text) -> list[tuple[int, int]]:
        """Stretches of `text.normal` around each anchor, wide enough for a whole match, merged."""
        if self.anchors is None:
            return [(0, len(text.normal))]
        present = [
            *(self._anchor_words & text.vocabulary),
            *(stem for stem in self._anchor_stems if text.shows(f" {stem[:-1]}")),
        ]
        found = sorted(at for anchor in present for at in text.positions(anchor))
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
        hits = (self.phrases[number].search(text) for number in self._candidates(text))
        return sorted((hit for hit in hits if hit is not None), key=lambda hit: hit.start)

    def _candidates(self, text: Text) -> list[int]:
        """The phrases that can be found: a phrase is only searched for around its anchor words, so one whose
        anchors are not among the text's words is skipped (a set intersection for the whole list)."""
        by_word, by_stem, everywhere = self._by_anchor
        found = set(everywhere)
        for word in self._anchor_words & text.vocabulary:
            found.update(by_word[word])
        for stem, numbers in by_stem.items():
            if text.shows(f" {stem}"):
                found.update(numbers)
        return sorted(found)

    @cached_property
    def _anchor_words(self) -> frozenset[str]:
        return frozenset(self._by_anchor[0])

    @cached_property
    def _by_anchor(self) -> tuple[dict[str, list[int]], dict[str, list[int]], list[int]]:
        """The phrases by anchor word, by anchor stem ("forward*"), and those searched for everywhere."""
        by_word: dict[str, list[int]] = {}
        by_stem: dict[str, list[int]] = {}
        everywhere: list[int] = []
        for number, phrase in enumerate(self.phrases):
            if phrase.anchors is None:
                everywhere.append(number)
            for anchor in phrase.anchors or ():
                if anchor.endswith("*"):
                    by_stem.setdefault(anchor[:-1], []).append(number)
                else:
                    by_word.setdefault(anchor, []).append(number)
        return by_word, by_stem, everywhere

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
        expression = entry[3:].strip()
        try:
            return Phrase(entry, regex.compile(expression), None, 0, _expression_needs(expression))
        except regex.error as exc:
            raise ValueError(f"{source}: {entry!r} is not a valid regular expression ({exc})") from None
    stray = [c for c in _SYNTAX.sub(" ", entry) if c in "()[]{}|"]
    if stray:
        raise ValueError(f"{source}: {entry!r} has a stray {stray[0]!r}: write choices as (a|b) or [a|b]")
    pieces: list[tuple[str, bool]] = []  # (pattern, optional)
    elements: list[list[str]] = []  # for each word or choice that must match, the words that could show it
    needs: list[Need] = []
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
            pieces.append(
                (
                    "(?:" + "|".join(" ".join(_word(w) for w in words) for words in alternatives) + ")",
                    optional_choices is not None,
                )
            )
            reach += max(len(words) for words in alternatives)
            if choices is not None:
                elements.append([max(words, key=_telling) for words in alternatives])
                needs.append(tuple(Choice.of(clue for w in words for clue in _clues(w)) for words in alternatives))
        elif token.group() == "{n}":
            pieces.append((NUMBER, False))
            reach += 2
        else:
            for word in words_of(token.group()):  # "e-mail" is two words, as in the text; "$1" is "1"
                pieces.append((_word(word), False))
                reach += 1
                elements.append([word])
                needs.append((Choice.of(_clues(word)),))
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
    return Phrase(entry, compiled, _anchors(elements), reach + 2, _cheap_first(needs))  # + 2: a typo may split a word


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
    chosen = [
        words for score, words in scored[:ANCHOR_ELEMENTS] if score > 1 or best == 1
    ]  # common words only if nothing better
    return tuple(dict.fromkeys(w for words in chosen for w in words)) or None


def words_of(token: str) -> list[str]:
    """The reduced words of one token of a phrase line, the last keeping a closing `*`."""
    words = [reduce_word(w) for w in _WORD.findall(token)]
    if words and token.endswith("*"):
        words[-1] += "*"
    return [w for w in words if w.rstrip("*")]


def _typos(stem: str) -> int:
    """How many typos a word of a phrase may have: none when short or common, one from five letters, two from nine."""
    if stem in EXACT_WORDS or len(stem) < 5:
        return 0
    return 2 if len(stem) >= 9 else 1


def _word(word: str) -> str:
    """One reduced word of a phrase as a pattern, with the typos it may have."""
    wildcard = word.endswith("*")
    stem = word.rstrip("*")
    typos = _typos(stem)
    pattern = f"(?:{regex.escape(stem)}){{e<={typos}}}" if typos else regex.escape(stem)
    return pattern + (r"\w*" if wildcard else "")


def _cheap_first(needs: list[Need]) -> tuple[Need, ...]:
    """The needs with those of whole words only (set lookups) first: every need must hold, so the order is free."""
    return tuple(sorted(needs, key=lambda need: sum(len(choice.clues) for choice in need)))


def _clues(word: str) -> tuple[Clue, ...]:
    """Clues to a phrase word that the words of any match of it show.

    A word that takes no typo is itself (" word ", or " stem" for "stem*"). A typo
    changes one place, so of the word cut in two, one part is untouched, and of it
    cut in three (two typos) one part: the first part still begins a word of the
    text, the last still ends one (unless `*` lets the word go on), a middle part
    is inside one; a typo may split the word with a space, never a part it left
    whole. Each way of cutting the word is a clue that must hold: three cuts, as
    even as can be, rule out far more than one.
    """
    wildcard = word.endswith("*")
    stem = word.rstrip("*")
    end = "" if wildcard else " "
    typos = _typos(stem)
    if not typos:
        return ((f" {stem}{end}",),)
    clues: list[Clue] = []
    for shift in (0, -1, 1):
        cuts = [round(len(stem) * i / (typos + 1)) + shift for i in range(1, typos + 1)]
        if cuts[0] < 2 or cuts[-1] > len(stem) - 2:  # a part of one letter tells little
            continue
        parts = [stem[start:stop] for start, stop in zip([0, *cuts], [*cuts, len(stem)], strict=True)]
        clue = (f" {parts[0]}", *parts[1:-1], f"{parts[-1]}{end}")
        if clue not in clues:
            clues.append(clue)
    return tuple(clues)


def _expression_needs(expression: str) -> tuple[Need, ...]:
    """What every match of a `re:` line has among its words, read from its literal words; () when that cannot be told.

    `re`'s parser reads the expression; a line that uses what only the `regex`
    module knows (fuzzy matching, POSIX classes) needs nothing, and is searched everywhere.
    """
    if _REGEX_MODULE_ONLY.search(expression):
        return ()
    try:
        parsed = sre_parse.parse(expression)
    except Exception:  # a construct `re` does not know (\p{L}, \m ...): search everywhere
        return ()
    return _cheap_first(_needs_of(list(parsed)))


def _needs_of(items: list[tuple[Any, Any]]) -> list[Need]:
    """The needs of a parsed expression: each run of literal characters, what a group or a repeat (at least once)
    needs, and for an alternation a need that one of its branches meets. Lookarounds and optional parts need nothing."""
    needs: list[Need] = []
    run = ""
    for op, value in [*items, (None, None)]:  # the last item ends the last run
        if op is sre.LITERAL or (op is sre.IN and len(value) == 1 and value[0][0] is sre.LITERAL):
            run += chr(value if op is sre.LITERAL else value[0][1])
            continue
        choice = _literal_choice(run)
        if choice is not None:
            needs.append((choice,))
        run = ""
        if op is sre.SUBPATTERN:
            needs += _needs_of(list(value[-1]))
        elif op is sre.ATOMIC_GROUP:
            needs += _needs_of(list(value))
        elif op in _REPEATS and value[0] >= 1:
            needs += _needs_of(list(value[2]))
        elif op is sre.BRANCH:
            branches = [_one_need(_needs_of(list(branch))) for branch in value[1]]
            if all(branches):
                needs.append(tuple(choice for need in branches for choice in need))  # type: ignore[union-attr]
    return needs


def _one_need(needs: list[Need]) -> Need | None:
    """One need standing for a branch's needs: its single-choice needs as one choice, else its first need."""
    single = [need[0] for need in needs if len(need) == 1]
    if single:
        return (Choice(frozenset().union(*(c.words for c in single)), tuple(clue for c in single for clue in c.clues)),)
    return needs[0] if needs else None


def _literal_choice(run: str) -> Choice | None:
    """Literal characters of an expression as the words they are in ("do not": a word ending "do" and one starting
    "not", " to " the word "to"); None for characters never in reduced text."""
    run = run.casefold()
    if not run.strip() or _NOT_IN_WORDS.search(run):
        return None
    parts = run.split(" ")
    last = len(parts) - 1
    return Choice.of((f"{' ' if i else ''}{part}{' ' if i < last else ''}",) for i, part in enumerate(parts) if part)
