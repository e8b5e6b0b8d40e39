"""Lookalike domains: a domain made to pass for one of the agency's own.

A domain is a lookalike of an agency domain when
- it looks the same: their UTS #39 confusable skeletons are equal (ICU's
  SpoofChecker, the reference implementation), so `examp1e.gov`,
  `exarnple.gov` and `exаmple.gov` with a Cyrillic "а" are all caught;
- it is one typing slip away: a swapped, doubled, missing or replaced letter
  (optimal string alignment distance 1, 2 for long names), on the whole
  domain or on its registrable name;
- it is the same name under another ending (`example.com` for `example.gov`);
- it carries the whole agency domain (`example.gov.mail-secure.com`,
  `example-gov.com`).
Short names (under 5 letters) are only compared by skeleton and exactly:
one slip away from "city" is too many honest domains.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import icu
import idna
from rapidfuzz.distance import OSA

from policies.auth.dmarc import organisational_domain

MIN_FUZZY = 5  # the shortest name compared by edit distance
LONG_NAME = 12  # from this length two slips still count


@dataclass(frozen=True)
class Lookalike:
    domain: str  # as it appears (Unicode when it was punycode)
    own: str  # the agency domain it imitates
    how: str  # in words


_checker = icu.SpoofChecker()


def skeleton(text: str) -> str:
    """The UTS #39 skeleton after NFKC and case folding: equal skeletons look the same."""
    return str(_checker.getSkeleton(0, unicodedata.normalize("NFKC", text).casefold())).casefold()


def to_unicode(domain: str) -> str:
    """A domain with its punycode (xn--) labels decoded, lower-case; labels that do not decode stay as they are."""
    labels = []
    for label in domain.strip().rstrip(".").lower().split("."):
        if label.startswith("xn--"):
            try:
                label = idna.decode(label)
            except idna.IDNAError:
                with contextlib.suppress(UnicodeError):  # IDNA 2003 decodes some that IDNA 2008 refuses
                    label = label.encode("ascii").decode("idna")
        labels.append(label)
    return ".".join(labels)


def _name(domain: str) -> str:
    """The registrable name: "example" for mail.example.gov."""
    return organisational_domain(domain).split(".", 1)[0]


def _squashed(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def find_lookalike(domain: str, own_domains: Iterable[str], trusted: Iterable[str] = ()) -> Lookalike | None:
    return _find(to_unicode(domain), tuple(sorted(own_domains)), tuple(sorted(trusted)))


@lru_cache(maxsize=4096)
def _find(domain: str, own_domains: tuple[str, ...], trusted: tuple[str, ...]) -> Lookalike | None:
    if not domain or "." not in domain:
        return None
    for safe in (*own_domains, *trusted):
        if domain == safe or domain.endswith(f".{safe}"):
            return None
    for own in own_domains:
        how = _how(domain, own)
        if how:
            return Lookalike(domain, own, how)
    return None


def _how(domain: str, own: str) -> str:
    if skeleton(domain) == skeleton(own):
        odd = [c for c in domain if not c.isascii() or c not in own]
        shown = ", ".join(f'"{c}" ({unicodedata.name(c, f"U+{ord(c):04X}").lower()})' for c in dict.fromkeys(odd))
        return f"looks the same as {own}" + (f": it uses {shown}" if shown else "")
    slip = _slip(domain, own)
    if slip:
        return f"is {own} with {slip}"
    name, own_name = _name(domain), _name(own)
    if name == own_name:
        return f"is the name of {own} under another ending"
    if len(own_name) >= MIN_FUZZY and (slip := _slip(name, own_name)):
        return f"is the name of {own} with {slip}, under another ending"
    if domain.startswith(f"{own}.") or _squashed(name) == _squashed(own):
        return f"contains {own}"
    return ""


def _slip(text: str, target: str) -> str:
    """How `text` differs from `target` by a typing slip, in words; "" when it does not."""
    if len(target) < MIN_FUZZY or text == target:
        return ""
    distance = OSA.distance(text, target)
    if distance == 1:
        return _describe(text, target)
    if distance == 2 and len(target) >= LONG_NAME:
        return "two letters changed"
    skeletal = OSA.distance(skeleton(text), skeleton(target))  # a confusable letter and a slip together
    if skeletal == 1:
        return "a look-alike letter and " + _describe(skeleton(text), skeleton(target))
    return ""


def _describe(text: str, target: str) -> str:
    """One edit, named: a swapped, doubled, missing, added or replaced letter."""
    if len(text) == len(target):
        diff = [i for i in range(len(text)) if text[i] != target[i]]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            return f'two letters swapped ("{text[diff[0] : diff[1] + 1]}" for "{target[diff[0] : diff[1] + 1]}")'
        if len(diff) == 1:
            return f'"{text[diff[0]]}" in place of "{target[diff[0]]}"'
    if len(text) == len(target) + 1:
        for i in range(len(text)):
            if text[:i] + text[i + 1 :] == target:
                doubled = (i > 0 and text[i - 1] == text[i]) or text[i + 1 : i + 2] == text[i]
                return f'a doubled "{text[i]}"' if doubled else f'an added "{text[i]}"'
    if len(text) + 1 == len(target):
        for i in range(len(target)):
            if target[:i] + target[i + 1 :] == text:
                return f'a missing "{target[i]}"'
    return "one letter changed"
