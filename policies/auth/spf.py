"""SPF (RFC 7208) for the envelope sender and the HELO name, with pyspf asking our resolver.

pyspf looks names up through its module function `spf.DNSLookup`; its own
test suite replaces that function to feed zone data. We replace it once with
a dispatcher that answers from the evaluation running in the current context
(or calls pyspf's own lookup when none is running).

pyspf is synchronous and our resolver is async, so an evaluation runs in
rounds on the event loop, with no thread: each round answers from what is
already known and notes every name it was missing; the missing names are
then looked up together, and the round runs again. A round that asked for
nothing unknown is the same evaluation pyspf would make with a live
resolver, and its result is the answer. Evaluating SPF is cheap; a few
rounds cost less than one thread hop per lookup.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import spf

from milter.kernel.dns import DnsTemporaryError, Lookup, Resolver, TracingResolver, normalise_name

SpfIdentity = Literal["mailfrom", "helo"]
RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
MAX_ROUNDS = 60  # RFC 7208 allows 10 mechanisms that look up, 10 MX or PTR names each, and 2 void lookups

_lookup: contextvars.ContextVar[Callable[[str, str], list[Any]] | None] = contextvars.ContextVar(
    "spf_lookup", default=None
)
_pyspf_lookup = spf.DNSLookup


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: Any = None, *rest: Any) -> list[Any]:
    lookup = _lookup.get()
    if lookup is None:
        return list(_pyspf_lookup(name, qtype, strict, timeout))
    return lookup(name, qtype)


spf.DNSLookup = _dispatch


class _Unknown(Exception):
    """A name this round has no answer for yet."""


@dataclass(frozen=True)
class SpfResult:
    identity: SpfIdentity
    sender: str  # the address checked: the MAIL FROM, or postmaster@HELO (RFC 7208 2.4)
    domain: str  # the domain whose record decided
    result: str  # one of RESULTS
    explanation: str
    lookups: tuple[Lookup, ...] = ()

    @property
    def passed(self) -> bool:
        return self.result == "pass"


def spf_sender(mail_from: str, helo: str) -> str:
    """The identity SPF checks: the MAIL FROM, or postmaster@HELO for the null sender (RFC 7208 2.4)."""
    return mail_from or f"postmaster@{helo}"


async def check_spf(
    resolver: Resolver,
    *,
    ip: str,
    sender: str,
    helo: str,
    identity: SpfIdentity,
    default_explanation: str | None = None,
) -> SpfResult:
    """The SPF result for `sender` sending from `ip`; every lookup goes through `resolver`."""
    tracer = TracingResolver(resolver)
    known: dict[tuple[str, str], tuple[Any, ...] | str] = {}  # answers, or why the lookup failed temporarily
    domain = sender.rpartition("@")[2].lower() if "@" in sender else helo.lower()
    missing: list[tuple[str, str]] = []  # what the current round asked for and did not have

    def lookup(name: str, qtype: str) -> list[Any]:
        key = (normalise_name(name), qtype)
        if key not in known:
            missing.append(key)
            raise _Unknown(name)
        answer = known[key]
        if isinstance(answer, str):
            raise spf.TempError(f"DNS {answer}")
        return [((name, qtype), record) for record in answer]

    for _ in range(MAX_ROUNDS):
        missing.clear()
        token = _lookup.set(lookup)
        try:
            query = spf.query(i=ip, s=sender, h=helo)
            if default_explanation is not None:
                query.set_default_explanation(default_explanation)
            result, _code, explanation = query.check()
        except _Unknown:
            result = explanation = ""
        finally:
            _lookup.reset(token)
        if not missing:
            return SpfResult(identity, sender, domain, str(result), str(explanation), tuple(tracer.lookups))
        await _learn(tracer, known, dict.fromkeys(missing))
    return SpfResult(
        identity, sender, domain, "temperror", f"more than {MAX_ROUNDS} rounds of lookups", tuple(tracer.lookups)
    )


async def _learn(
    resolver: Resolver, known: dict[tuple[str, str], tuple[Any, ...] | str], wanted: dict[tuple[str, str], None]
) -> None:
    async def one(name: str, qtype: str) -> None:
        try:
            known[(name, qtype)] = (await resolver.query(name, qtype)).records
        except DnsTemporaryError as exc:
            known[(name, qtype)] = str(exc)

    await asyncio.gather(*(one(name, qtype) for name, qtype in wanted))
