"""The archive's query language: parsed once into a small tree that both backends compile.

    budget "capital plan" from:sortiz@example.gov after:2026-01-01
    (invoice OR receipt) AND NOT direction:inbound
    subject:minutes -rule:language has:attachment filename:budg*

- words and "phrases" search the subject, the bodies, attachment text, the
  addresses and file names; a word ending in * is a prefix;
- field:value narrows: from: to: cc: subject: filename: take words or
  "phrases" too; direction: decision: kind: rule: after: before: has:attachment;
- AND (or nothing), OR, NOT (or a leading -) and parentheses; AND binds
  tighter than OR. Operators are upper case, so "not" and "or" are words.
Every mistake is a QueryError that says what is wrong, where, and how to write it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date

import regex

from archive import words

TEXT_FIELDS = ("from", "to", "cc", "subject", "filename")
CHOICES = {
    "direction": ("inbound", "outbound", "internal"),
    "decision": ("deliver", "hold", "reject", "tempfail"),
    "kind": ("received", "generated", "imported"),
    "has": ("attachment",),
}
FIELDS = (*TEXT_FIELDS, "direction", "decision", "kind", "rule", "after", "before", "has")
ALIASES = {"file": "filename", "attachment": "filename", "action": "decision", "has:attachments": "has"}
MAX_LENGTH = 2000
MAX_TERMS = 64

_TOKEN = regex.compile(
    r"""
    (?P<space>\s+)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<field>[A-Za-z_]+):(?P<value>"[^"]*"?|[^\s()"]*)
  | (?P<phrase>"[^"]*"?)
  | (?P<word>[^\s()"]+)
""",
    regex.VERBOSE,
)
_DATE = regex.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})")
_RULE = regex.compile(r"[a-z0-9_\-]{1,64}")


class QueryError(ValueError):
    """A query that cannot be run, with where it went wrong and how to fix it."""

    def __init__(self, problem: str, position: int | None = None) -> None:
        self.problem, self.position = problem, position
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"{problem}{where}")


# -- the tree ----------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """Words in a row (one word, or a phrase), in one field or anywhere (field None)."""

    field: str | None
    words: tuple[str, ...]
    prefix: bool = False  # the last word is a prefix


@dataclass(frozen=True)
class Filter:
    """A condition on a record's metadata: direction, decision, kind, rule, after, before, has."""

    field: str
    value: str | date


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Text | Filter | And | Or | Not


# -- tokens ------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # open, close, and, or, not, term
    position: int
    field: str | None = None
    value: str = ""
    quoted: bool = False


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        assert match is not None  # the word branch matches any other character
        kind = match.lastgroup
        if kind == "value":  # the value belongs to a field; lastgroup names the inner group
            kind = "field"
        start = position
        position = match.end()
        if kind == "space":
            continue
        if kind in ("open", "close"):
            tokens.append(Token(kind, start))
        elif kind == "field":
            name, value = match.group("field").lower(), match.group("value")
            if not value:
                if ALIASES.get(name, name) not in FIELDS:
                    leaf(Token("term", start, name, value))  # says there is no such field
                raise QueryError(f"{name}: needs a value right after the colon, such as {name}:{_example(name)}", start)
            tokens.append(_term(value, start, name))
        elif kind == "phrase":
            tokens.append(_term(match.group("phrase"), start, None))
        else:
            word = match.group("word")
            if word in ("AND", "OR", "NOT"):
                tokens.append(Token(word.lower(), start))
            elif word.startswith("-") and len(word) > 1:
                tokens.append(Token("not", start))
                position = start + 1  # read the rest as its own term
            else:
                tokens.append(_term(word, start, None))
    return tokens


def _term(value: str, position: int, name: str | None) -> Token:
    quoted = value.startswith('"')
    if quoted:
        if len(value) < 2 or not value.endswith('"'):
            raise QueryError('a quote is not closed: end the phrase with "', position)
        value = value[1:-1]
    return Token("term", position, name, value, quoted)


def _example(name: str) -> str:
    return {
        "after": "2026-01-31",
        "before": "2026-01-31",
        "rule": "confidential",
        "has": "attachment",
        "subject": "budget",
        "filename": "report.pdf",
    }.get(name, CHOICES.get(name, ("sortiz@example.gov",))[0])


# -- parsing -----------------------------------------------------------------


def parse(query: str) -> Node | None:
    """The query's tree; None for an empty query (every message)."""
    if len(query) > MAX_LENGTH:
        raise QueryError(f"the query is longer than {MAX_LENGTH} characters; shorten it")
    tokens = tokenize(query)
    if not tokens:
        return None
    parser = _Parser(tokens)
    node = parser.or_()
    if parser.index < len(tokens):
        token = tokens[parser.index]
        raise QueryError(
            "a closing parenthesis has no opening one" if token.kind == "close" else "unexpected text", token.position
        )
    if parser.terms > MAX_TERMS:
        raise QueryError(f"more than {MAX_TERMS} search terms; split the search in two")
    return node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.index, self.terms = tokens, 0, 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def or_(self) -> Node:
        items = [self.and_()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.take()
            if self.peek() is None or self.peek().kind in ("close", "or", "and"):  # type: ignore[union-attr]
                raise QueryError("OR needs something to search for after it", token.position)
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while (token := self.peek()) is not None and token.kind not in ("or", "close"):
            if token.kind == "and":
                self.take()
                following = self.peek()
                if following is None or following.kind in ("close", "or", "and"):
                    raise QueryError("AND needs something to search for after it", token.position)
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        token = self.peek()
        if token is None:
            raise QueryError("the query ends where a search term was expected")
        if token.kind == "not":
            self.take()
            if self.peek() is None or self.peek().kind in ("close", "or", "and"):  # type: ignore[union-attr]
                raise QueryError("NOT needs something to leave out after it", token.position)
            return Not(self.unary())
        return self.atom()

    def atom(self) -> Node:
        token = self.take()
        if token.kind == "open":
            if self.peek() is not None and self.peek().kind == "close":  # type: ignore[union-attr]
                raise QueryError("empty parentheses", token.position)
            node = self.or_()
            closing = self.peek()
            if closing is None or closing.kind != "close":
                raise QueryError("a parenthesis is not closed: add )", token.position)
            self.take()
            return node
        if token.kind == "term":
            self.terms += 1
            return leaf(token)
        what = {
            "close": "a closing parenthesis has no opening one",
            "and": "AND needs something to search for before it",
            "or": "OR needs something to search for before it",
        }
        raise QueryError(what.get(token.kind, "unexpected text"), token.position)


def leaf(token: Token) -> Node:
    name = ALIASES.get(token.field or "", token.field)
    if name is not None and name not in FIELDS:
        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f"Did you mean {close[0]}:? " if close else ""
        raise QueryError(
            f"there is no field {name}:. {hint}The fields are {', '.join(f + ':' for f in FIELDS)}. "
            f'To search for the text, put it in quotes: "{name}:{token.value}"',
            token.position,
        )
    if name is None or name in TEXT_FIELDS:
        return _text(name, token)
    value = token.value.strip().lower()
    if name in CHOICES:
        if value == "attachments":
            value = "attachment"
        if value not in CHOICES[name]:
            raise QueryError(
                f"{name}:{token.value} is not known; use {' or '.join(name + ':' + c for c in CHOICES[name])}",
                token.position,
            )
        return Filter(name, value)
    if name == "rule":
        if not _RULE.fullmatch(value):
            raise QueryError(
                f"rule:{token.value} is not a rule name; write it as the rules are named, such as rule:confidential",
                token.position,
            )
        return Filter(name, value)
    return Filter(name, _date(name, token))


def _text(name: str | None, token: Token) -> Text:
    value = token.value
    prefix = not token.quoted and value.endswith("*")
    found = tuple(words.words(value))
    if not found:
        where = f"{name}:" if name else ""
        raise QueryError(
            f"{where}{token.value!s} has no letters or digits to search for; "
            'put text with punctuation in quotes, such as "1-210(b)"',
            token.position,
        )
    return Text(name, found, prefix)


def _date(name: str, token: Token) -> date:
    match = _DATE.fullmatch(token.value.strip())
    try:
        if match is None:
            raise ValueError
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise QueryError(
            f"{name}:{token.value} is not a date; write it as {name}:2026-01-31 (year-month-day)", token.position
        ) from None


# -- what a query says about dates --------------------------------------------


def period(node: Node | None) -> tuple[date | None, date | None]:
    """The after: and before: bounds every match must meet (those ANDed at the top), for completeness notes."""
    after: date | None = None
    before: date | None = None
    items = node.items if isinstance(node, And) else (node,) if node is not None else ()
    for item in items:
        if isinstance(item, Filter) and item.field == "after" and isinstance(item.value, date):
            after = item.value if after is None else max(after, item.value)
        if isinstance(item, Filter) and item.field == "before" and isinstance(item.value, date):
            before = item.value if before is None else min(before, item.value)
    return after, before
