"""DMARC (RFC 7489): the From domain's published policy, identifier alignment, and what applies.

Small enough to write plainly: find the record at `_dmarc.<From domain>`,
else at the organisational domain (the public suffix list, bundled with
`publicsuffixlist`, so no network); the message passes when a DKIM signature
that verified or an SPF pass is aligned with the From domain (relaxed: the
same organisational domain; strict: the same domain). A failure gets the
record's `p=` (or `sp=` for a subdomain that has no record of its own),
sampled by `pct=`: a message outside the sample gets the next policy down
(reject -> quarantine -> none, RFC 7489 6.6.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, cast

from publicsuffixlist import PublicSuffixList

from milter.kernel.dns import DnsTemporaryError, Lookup, Resolver, TracingResolver, normalise_name
from policies.auth.dkim import DkimResult
from policies.auth.spf import SpfResult

Policy = Literal["none", "quarantine", "reject"]
POLICIES: tuple[Policy, ...] = ("none", "quarantine", "reject")
DOWNGRADE: dict[Policy, Policy] = {"reject": "quarantine", "quarantine": "none", "none": "none"}
SEVERITY = {"pass": 0, "none": 1, "permerror": 2, "temperror": 3, "fail": 4}


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package; unknown TLDs count as public suffixes


@lru_cache(maxsize=4096)
def organisational_domain(domain: str) -> str:
    """The registrable domain (example.gov for mail.example.gov); the domain itself when it is a public suffix."""
    domain = normalise_name(domain)
    return _psl().privatesuffix(domain) or domain


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    identifier, from_domain = normalise_name(identifier), normalise_name(from_domain)
    if not identifier or not from_domain:
        return False
    if mode == "s":
        return identifier == from_domain
    return organisational_domain(identifier) == organisational_domain(from_domain)


@dataclass(frozen=True)
class DmarcRecord:
    domain: str  # where it was found
    text: str
    p: Policy
    sp: Policy
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


def parse_record(domain: str, text: str) -> DmarcRecord:
    """A DMARC record's tags (RFC 7489 6.3); ValueError when it is not a usable one."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    first = text.split(";", 1)[0].split("=", 1)
    if len(first) != 2 or first[0].strip() != "v" or first[1].strip() != "DMARC1":
        raise ValueError("the record does not start with v=DMARC1")
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        # RFC 7489 6.6.3: a record with a valid rua but no usable p= is read as p=none
        if "rua" in tags:
            p = "none"
        else:
            raise ValueError(f"p={tags.get('p', '')!r} is not none, quarantine or reject")
    sp = tags.get("sp", p).lower()
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100  # RFC 7489 6.3: a malformed tag is ignored, the default applies
    return DmarcRecord(
        domain,
        text,
        cast(Policy, p),
        cast(Policy, sp if sp in POLICIES else p),
        "s" if adkim == "s" else "r",
        "s" if aspf == "s" else "r",
        max(0, min(pct, 100)),
    )


@dataclass(frozen=True)
class DmarcResult:
    result: str  # "pass", "fail", "none" (no policy published), "temperror", "permerror"
    from_domain: str
    record: DmarcRecord | None = None
    policy: Policy | None = None  # the published policy that applies to this domain (p= or sp=)
    disposition: Policy = "none"  # what the policy asks for this message, after pct sampling
    dkim_domain: str = ""  # d= of the aligned signature that passed
    spf_aligned: bool = False
    reason: str = ""
    lookups: tuple[Lookup, ...] = ()

    @property
    def passed(self) -> bool:
        return self.result == "pass"


async def find_record(resolver: Resolver, from_domain: str) -> tuple[DmarcRecord | None, str, tuple[Lookup, ...]]:
    """The record for a From domain (its own, else its organisational domain's), why none, and the lookups."""
    tracer = TracingResolver(resolver)
    organisational = organisational_domain(from_domain)
    why = ""
    for domain in dict.fromkeys((from_domain, organisational)):
        texts = [t.decode("utf-8", "replace") for t in await tracer.txt(f"_dmarc.{domain}")]
        candidates = [t for t in texts if t.replace(" ", "").startswith("v=DMARC1")]
        if len(candidates) > 1:
            return (
                None,
                f"_dmarc.{domain} has {len(candidates)} DMARC records; none applies (RFC 7489 6.6.3)",
                tuple(tracer.lookups),
            )
        if candidates:
            try:
                return parse_record(domain, candidates[0]), "", tuple(tracer.lookups)
            except ValueError as exc:
                why = f"the record at _dmarc.{domain} is not valid: {exc}"
                return None, why, tuple(tracer.lookups)
    return None, f"{from_domain} publishes no DMARC record", tuple(tracer.lookups)


@dataclass(frozen=True)
class Discovery:
    """What DNS said about a From domain's policy: the record, or why there is none, or why we cannot tell yet."""

    from_domain: str
    record: DmarcRecord | None
    why: str
    lookups: tuple[Lookup, ...]
    temporary: str = ""  # the lookup failed temporarily: the verdict is not known


async def discover(resolver: Resolver, from_domain: str) -> Discovery:
    from_domain = normalise_name(from_domain)
    try:
        record, why, lookups = await find_record(resolver, from_domain)
    except DnsTemporaryError as exc:
        return Discovery(
            from_domain, None, "", (Lookup(exc.name, exc.rdtype, "TEMPERROR", error=exc.reason),), str(exc)
        )
    return Discovery(from_domain, record, why, lookups)


def judge(discovery: Discovery, dkim: Sequence[DkimResult], spf: SpfResult | None, sample: float) -> DmarcResult:
    """The DMARC result for one From domain. `sample` in [0, 100) decides pct= sampling."""
    if discovery.temporary:
        return DmarcResult(
            "temperror",
            discovery.from_domain,
            reason=f"the DMARC record lookup failed temporarily ({discovery.temporary})",
            lookups=discovery.lookups,
        )
    return evaluate(discovery.from_domain, discovery.record, discovery.why, dkim, spf, sample, discovery.lookups)


async def check_dmarc(
    resolver: Resolver, from_domain: str, dkim: Sequence[DkimResult], spf: SpfResult | None, sample: float
) -> DmarcResult:
    """The DMARC result for one From domain: discover, then judge."""
    return judge(await discover(resolver, from_domain), dkim, spf, sample)


def evaluate(
    from_domain: str,
    record: DmarcRecord | None,
    why: str,
    dkim: Sequence[DkimResult],
    spf: SpfResult | None,
    sample: float,
    lookups: tuple[Lookup, ...] = (),
) -> DmarcResult:
    if record is None:
        return DmarcResult("none", from_domain, reason=why, lookups=lookups)
    policy: Policy = record.p if record.domain == from_domain else record.sp
    dkim_pass = next((r for r in dkim if r.passed and aligned(r.domain, from_domain, record.adkim)), None)
    spf_pass = spf is not None and spf.passed and aligned(spf.domain, from_domain, record.aspf)
    base: dict[str, Any] = {"record": record, "policy": policy, "lookups": lookups}
    if dkim_pass or spf_pass:
        return DmarcResult(
            "pass", from_domain, dkim_domain=dkim_pass.domain if dkim_pass else "", spf_aligned=spf_pass, **base
        )
    # An identifier that might have aligned could not be checked: the verdict is not known yet.
    unsure = [
        f"dkim d={r.domain}" for r in dkim if r.result == "temperror" and aligned(r.domain, from_domain, record.adkim)
    ]
    if spf is not None and spf.result == "temperror" and aligned(spf.domain, from_domain, record.aspf):
        unsure.append(f"spf {spf.domain}")
    if unsure:
        return DmarcResult(
            "temperror",
            from_domain,
            reason=f"a check that could have passed failed temporarily ({', '.join(unsure)})",
            **base,
        )
    disposition = policy if sample < record.pct else DOWNGRADE[policy]
    return DmarcResult(
        "fail", from_domain, disposition=disposition, reason=_why_not(from_domain, record, dkim, spf), **base
    )


def _why_not(from_domain: str, record: DmarcRecord, dkim: Sequence[DkimResult], spf: SpfResult | None) -> str:
    """Why neither DKIM nor SPF authenticated the From domain, in words."""
    strict = {"s": "strict", "r": "relaxed"}
    if not dkim:
        dkim_part = "the message has no DKIM signature"
    else:
        parts = []
        for r in dkim:
            if not r.passed:
                parts.append(f"d={r.domain} {r.result}" + (f" ({r.reason})" if r.reason else ""))
            else:
                parts.append(f"d={r.domain} passed but is not aligned with {from_domain} ({strict[record.adkim]})")
        dkim_part = "DKIM: " + "; ".join(parts)
    if spf is None:
        spf_part = "SPF was not checked"
    elif spf.passed:
        spf_part = f"SPF passed for {spf.domain}, which is not aligned with {from_domain} ({strict[record.aspf]})"
    else:
        spf_part = f"SPF {spf.result} for {spf.domain}"
    return f"{dkim_part}; {spf_part}"


def worst(results: Sequence[DmarcResult]) -> DmarcResult:
    """Of several From domains, the result that asks the most."""
    return max(results, key=lambda r: (SEVERITY.get(r.result, 0), POLICIES.index(r.disposition)))
