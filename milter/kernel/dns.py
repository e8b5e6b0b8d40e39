"""DNS for the rules: one small async interface, answers cached with their TTL.

Rules that check the sender (SPF, DKIM, DMARC) ask a `Resolver`:

- `DnsPythonResolver`, the production one, on dnspython's async resolver;
- `CachingResolver` in front of it: positive answers live for their TTL,
  negative ones (NXDOMAIN, no data) for the zone's SOA minimum (RFC 2308),
  both capped and in a bounded LRU; temporary failures are never cached;
- `ZoneResolver`, answers from zone data in memory, for tests and for trying
  records before they are published;
- `TracingResolver`, which records every lookup a rule made, so a finding or
  `aup-milter check` can show the DNS data a result was based on.

A lookup that cannot be answered now (a timeout, SERVFAIL, no reachable
server) raises `DnsTemporaryError`; it never reads as "no record", which would
turn a broken resolver into a pass.
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import cachetools
import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

if TYPE_CHECKING:
    from milter.kernel.settings import DnsSettings

log = logging.getLogger(__name__)

Status = Literal["NOERROR", "NXDOMAIN", "NODATA"]
TYPES = ("A", "AAAA", "MX", "TXT", "PTR", "CNAME", "SPF")
MAX_CNAME_HOPS = 8
ZONE_TTL = 300  # the TTL of zone data that names none


class DnsTemporaryError(Exception):
    """The question could not be answered now; ask again later. Never the same as "no record"."""

    def __init__(self, name: str, rdtype: str, reason: str) -> None:
        self.name, self.rdtype, self.reason = name, rdtype, reason
        super().__init__(f"{name} {rdtype}: {reason}")


def normalise_name(name: str | bytes) -> str:
    """Lower case, no trailing dot: how names are compared and cached."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Answer:
    """The records of one name and type. TXT and SPF records are tuples of byte strings (as sent,
    a record may be split in several strings); MX records are (preference, host); A, AAAA, PTR and
    CNAME records are text. Host names have no trailing dot."""

    name: str
    rdtype: str
    status: Status
    records: tuple[Any, ...] = ()
    ttl: int = 0
    cached: bool = False

    def txt(self) -> list[bytes]:
        """Each TXT record with its strings joined (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
        return [b"".join(record) for record in self.records] if self.rdtype in ("TXT", "SPF") else []

    def texts(self) -> list[str]:
        """Each record as a person reads it."""
        return [record_text(self.rdtype, record) for record in self.records]


def record_text(rdtype: str, record: Any) -> str:
    if rdtype in ("TXT", "SPF"):
        return '"' + b"".join(record).decode("utf-8", "replace").replace('"', '\\"') + '"'
    if rdtype == "MX":
        return f"{record[0]} {record[1]}"
    return str(record)


@dataclass(frozen=True)
class Lookup:
    """One query a rule made and what came back, for explanations."""

    name: str
    rdtype: str
    status: Literal["NOERROR", "NXDOMAIN", "NODATA", "TEMPERROR"]
    records: tuple[str, ...] = ()
    ttl: int = 0
    cached: bool = False
    error: str = ""

    def __str__(self) -> str:
        if self.status == "TEMPERROR":
            return f"{self.name} {self.rdtype}: temporary error ({self.error})"
        shown = "; ".join(_shorten(r) for r in self.records) if self.records else self.status
        when = f"ttl {self.ttl}s" + (", from cache" if self.cached else "")
        return f"{self.name} {self.rdtype}: {shown} ({when})"


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-16:]} ({len(text)} characters)"


class Resolver:
    """What rules ask. Subclasses answer `query`; the rest are conveniences."""

    async def query(self, name: str, rdtype: str) -> Answer:
        raise NotImplementedError

    async def txt(self, name: str) -> list[bytes]:
        return (await self.query(name, "TXT")).txt()


# -- production -------------------------------------------------------------


class DnsPythonResolver(Resolver):
    """dnspython's async stub resolver: the system's nameservers (resolv.conf) or the ones configured."""

    def __init__(self, nameservers: Iterable[str] = (), timeout: float = 5.0, negative_ttl: int = 300) -> None:
        servers = list(nameservers)
        try:
            self.resolver = dns.asyncresolver.Resolver(configure=not servers)
        except dns.resolver.NoResolverConfiguration:
            # No resolv.conf (or no nameserver in it): start anyway; every lookup is a temporary error (451), never a pass.
            log.error("no DNS nameserver is configured (resolv.conf or [dns] nameservers): sender checks will tempfail")
            self.resolver = dns.asyncresolver.Resolver(configure=False)
        if servers:
            self.resolver.nameservers = [_nameserver(s) for s in servers]
        self.configured = bool(self.resolver.nameservers)
        self.resolver.cache = None  # CachingResolver caches, negative answers included
        self.resolver.lifetime = timeout  # the whole question, retries and servers included
        self.resolver.timeout = min(timeout, 2.0)  # one try at one server
        self.timeout = timeout
        self.negative_ttl = negative_ttl

    async def query(self, name: str, rdtype: str) -> Answer:
        name = normalise_name(name)
        if rdtype not in TYPES:
            raise ValueError(f"unsupported record type {rdtype}")
        if not self.configured:
            raise DnsTemporaryError(name, rdtype, "no nameserver is configured (resolv.conf or [dns] nameservers)")
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError):
            return Answer(name, rdtype, "NXDOMAIN")  # no such name can exist (a label too long, empty ...)
        try:
            answer = await self.resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            return Answer(name, rdtype, "NXDOMAIN", ttl=self._negative_ttl(_response_of(exc)))
        except dns.resolver.NoNameservers as exc:
            raise DnsTemporaryError(name, rdtype, f"no server could answer ({_first_line(exc)})") from None
        except dns.exception.Timeout:
            raise DnsTemporaryError(name, rdtype, f"no answer within {self.timeout:g}s") from None
        except dns.resolver.NoResolverConfiguration:
            raise DnsTemporaryError(
                name, rdtype, "no nameserver is configured (resolv.conf or [dns] nameservers)"
            ) from None
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(name, rdtype, _first_line(exc)) from None
        if answer.rrset is None:
            return Answer(name, rdtype, "NODATA", ttl=self._negative_ttl(answer.response))
        records = tuple(_record(rdtype, rdata) for rdata in answer.rrset)
        return Answer(name, rdtype, "NOERROR", records, answer.rrset.ttl)

    def _negative_ttl(self, response: Any) -> int:
        """RFC 2308: the SOA's minimum, or its own TTL if lower; else the configured default."""
        for rrset in getattr(response, "authority", None) or ():
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                return int(min(rrset.ttl, rrset[0].minimum))
        return self.negative_ttl


def _nameserver(text: str) -> dns.nameserver.Nameserver:
    """'192.0.2.53', '192.0.2.53:5353', '2001:db8::53' or '[2001:db8::53]:5353'."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)  # a name here would need DNS to find DNS
    return dns.nameserver.Do53Nameserver(host, port)


def _response_of(exc: dns.resolver.NXDOMAIN) -> Any:
    try:
        return exc.response(exc.qnames()[0])
    except Exception:
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def _record(rdtype: str, rdata: Any) -> Any:
    if rdtype in ("TXT", "SPF"):
        return tuple(rdata.strings)
    if rdtype == "MX":
        return (int(rdata.preference), normalise_name(rdata.exchange.to_text()))
    if rdtype in ("PTR", "CNAME"):
        return normalise_name(rdata.target.to_text())
    return str(rdata.address)


# -- cache ------------------------------------------------------------------


class CachingResolver(Resolver):
    """Answers kept for their TTL (capped), negative ones too; a bounded LRU, safe across threads."""

    def __init__(
        self,
        upstream: Resolver,
        *,
        size: int = 10_000,
        max_ttl: int = 86_400,
        max_negative_ttl: int = 3_600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.max_ttl, self.max_negative_ttl = max_ttl, max_negative_ttl
        self._lock = threading.Lock()  # several gateways (tests) or check runs may share one resolver
        self._cache: cachetools.TLRUCache[tuple[str, str], Answer] = cachetools.TLRUCache(
            maxsize=size, ttu=self._expires, timer=clock
        )

    def _expires(self, key: tuple[str, str], answer: Answer, now: float) -> float:
        cap = self.max_ttl if answer.status == "NOERROR" else self.max_negative_ttl
        return now + max(0, min(answer.ttl, cap))

    async def query(self, name: str, rdtype: str) -> Answer:
        key = (normalise_name(name), rdtype)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return replace(hit, cached=True)
        answer = await self.upstream.query(*key)  # DnsTemporaryError passes through and is not cached
        if answer.ttl > 0 and self._cache.maxsize > 0:
            with self._lock:
                self._cache[key] = answer
        return answer

    def size(self) -> int:
        """How many answers are kept now (expired ones dropped first)."""
        with self._lock:
            self._cache.expire()
            return len(self._cache)


# -- zone data --------------------------------------------------------------

ZoneEntry = tuple[str, Any] | tuple[str, Any, int]


class ZoneResolver(Resolver):
    """Answers from zone data in memory: {name: [(TYPE, value[, ttl]), ...]}.

    TXT values are a string or a list of strings (one record split in several);
    MX values are (preference, host) or "10 host". Two markers make lookups
    fail as a broken server would: ("TIMEOUT", None) times out every query of
    the name for a type not listed before the marker; (TYPE, "TIMEOUT") times
    out queries of that type. CNAMEs are followed, as a recursive resolver does.
    """

    def __init__(self, zone: Mapping[str, Iterable[ZoneEntry]] | None = None) -> None:
        self.zone: dict[str, list[ZoneEntry]] = {}
        for name, entries in (zone or {}).items():
            self.zone.setdefault(normalise_name(name), []).extend(entries)
        self.queries: list[tuple[str, str]] = []  # every question asked, for tests of the cache

    @classmethod
    def from_text(cls, text: str) -> ZoneResolver:
        """Lines of `NAME [TTL] TYPE VALUE...`; TXT values are "quoted strings"; # starts a comment.
        `NAME TIMEOUT` and `NAME TYPE TIMEOUT` are the markers described above."""
        zone: dict[str, list[ZoneEntry]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if len(words) == 2 and words[1].upper() == "TIMEOUT":
                zone.setdefault(words[0], []).append(("TIMEOUT", None))
                continue
            ttl = ZONE_TTL
            if len(words) > 2 and words[1].isdigit():
                ttl = int(words.pop(1))
            if len(words) < 3 or words[1].upper() not in TYPES:
                raise ValueError(f"zone line {number}: expected NAME [TTL] TYPE VALUE, got {line!r}")
            rdtype = words[1].upper()
            value: Any = words[2:] if rdtype in ("TXT", "SPF") and words[2:] != ["TIMEOUT"] else " ".join(words[2:])
            zone.setdefault(words[0], []).append((rdtype, value, ttl))
        return cls(zone)

    async def query(self, name: str, rdtype: str) -> Answer:
        name = normalise_name(name)
        self.queries.append((name, rdtype))
        seen: set[str] = set()
        current = name
        for _ in range(MAX_CNAME_HOPS):
            entries = self.zone.get(current)
            if entries is None:
                return Answer(name, rdtype, "NXDOMAIN", ttl=ZONE_TTL)
            records, ttl = self._records(current, entries, rdtype)
            if records or rdtype == "CNAME":
                return Answer(name, rdtype, "NOERROR" if records else "NODATA", tuple(records), ttl)
            cnames, _ = self._records(current, entries, "CNAME")
            if not cnames or current in seen:
                return Answer(name, rdtype, "NODATA", ttl=ZONE_TTL)
            seen.add(current)
            current = cnames[0]
        return Answer(name, rdtype, "NODATA", ttl=ZONE_TTL)

    def _records(self, name: str, entries: list[ZoneEntry], rdtype: str) -> tuple[list[Any], int]:
        records: list[Any] = []
        ttl = ZONE_TTL
        for entry in entries:
            kind, value = entry[0].upper(), entry[1]
            if kind == "TIMEOUT":
                if not records:
                    raise DnsTemporaryError(name, rdtype, "timed out (zone data)")
                break
            if kind != rdtype:
                continue
            if value == "TIMEOUT":
                raise DnsTemporaryError(name, rdtype, "timed out (zone data)")
            records.append(_zone_value(rdtype, value))
            ttl = entry[2] if len(entry) > 2 else ZONE_TTL  # type: ignore[misc]
        return records, ttl


def _zone_value(rdtype: str, value: Any) -> Any:
    if rdtype in ("TXT", "SPF"):
        strings = [value] if isinstance(value, str | bytes) else list(value)
        return tuple(s if isinstance(s, bytes) else s.encode("utf-8") for s in strings)
    if rdtype == "MX":
        if isinstance(value, str):
            preference, _, host = value.strip().partition(" ")
            return (int(preference), normalise_name(host))
        return (int(value[0]), normalise_name(value[1]))
    if rdtype in ("PTR", "CNAME"):
        return normalise_name(value)
    return str(value)


# -- tracing ----------------------------------------------------------------


class TracingResolver(Resolver):
    """Passes questions on and keeps each one with its answer, in order."""

    def __init__(self, inner: Resolver) -> None:
        self.inner = inner
        self.lookups: list[Lookup] = []

    async def query(self, name: str, rdtype: str) -> Answer:
        try:
            answer = await self.inner.query(name, rdtype)
        except DnsTemporaryError as exc:
            self.lookups.append(Lookup(normalise_name(name), rdtype, "TEMPERROR", error=exc.reason))
            raise
        self.lookups.append(
            Lookup(answer.name, rdtype, answer.status, tuple(answer.texts()), answer.ttl, answer.cached)
        )
        return answer


# -- wiring -----------------------------------------------------------------


@lru_cache(maxsize=4)
def resolver_for(settings: DnsSettings) -> Resolver:
    """The process's resolver for these settings: one cache, kept across config reloads that leave [dns] alone."""
    upstream = DnsPythonResolver(settings.nameservers, settings.timeout, settings.negative_ttl)
    return CachingResolver(
        upstream, size=settings.cache_size, max_ttl=settings.max_ttl, max_negative_ttl=settings.max_negative_ttl
    )
