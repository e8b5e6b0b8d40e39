"""Mail from outside must not pass as someone it is not: DKIM, SPF, DMARC and ARC, and the agency's own domains.

For every inbound message this rule
- verifies each DKIM signature (dkimpy), checks SPF for the envelope sender
  and for the HELO name (pyspf), evaluates DMARC for the From domain, and
  validates the ARC chain, asking DNS through the injectable resolver
  (milter/kernel/dns.py: cached with TTLs, a timeout is a temporary error);
- records one Authentication-Results header (RFC 8601) with the gateway's
  authserv-id, and strips incoming ones that claim that authserv-id;
- asks for the configured action when the From domain's owner publishes
  p=reject or p=quarantine and the message fails DMARC, and rejects mail
  that claims a From or envelope sender in one of the agency's own domains
  but arrives from outside unauthenticated, whatever DMARC says;
- answers 451 (try later) when a DNS failure leaves the verdict open: a
  temporary error is never read as a pass.

Other rules read the results with `results(message)` (see AuthenticationResults).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import authres
import authres.arc
import authres.dmarc
from authres.core import AuthenticationResultProperty
from pydantic import Field, field_validator

from milter.kernel import dns
from milter.kernel.directory import domain_of, normalise_address
from milter.kernel.settings import DnsSettings
from milter.kernel.units import Size
from milter.mail.edit import remove_headers
from milter.mail.message import Direction, Message, ResultKey
from policies.auth.dkim import NO_ARC, ArcResult, DkimResult
from policies.auth.dkim import verify as verify_dkim
from policies.auth.dmarc import DmarcResult, aligned, discover, judge, organisational_domain, worst
from policies.auth.spf import SpfResult, check_spf, spf_sender
from policies.base import Finding, Policy, PolicySettings, SettingsTable
from policies.text.conduct import CATEGORY_ACTION_FIX, CategoryAction, effective

HEADER = "Authentication-Results"
MAX_HEADER = 900  # one line (the relay does not fold added headers); RFC 5322 allows 998
MAX_EVIDENCE = 40
TEMPFAIL_REPLY = "451 4.4.3"
_COMMENT = re.compile(r"^\s*\((?:[^()\\]|\\.)*\)\s*")


# -- results, for this rule and for others ----------------------------------


@dataclass(frozen=True)
class AuthenticationResults:
    """What the gateway found out about who sent an inbound message.

    Other rules use `from_authenticated` ("is the From identity
    authenticated": DMARC passed, or DKIM or SPF aligned with every From
    domain) or the individual results.
    """

    authserv_id: str
    spf: SpfResult  # the MAIL FROM identity (postmaster@HELO for the null sender)
    helo: SpfResult | None  # the HELO identity, when the HELO name is a domain
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult  # the one that asks the most, when From names several domains
    arc: ArcResult
    from_domains: tuple[str, ...]

    def authenticates(self, domain: str) -> bool:
        """Whether a passing DKIM signature or SPF pass is aligned (relaxed) with `domain`."""
        return any(r.passed and aligned(r.domain, domain, "r") for r in self.dkim) or (
            self.spf.passed and aligned(self.spf.domain, domain, "r")
        )

    def unsure_about(self, domain: str) -> list[str]:
        """The checks that might have authenticated `domain` but failed temporarily."""
        unsure = [
            f"DKIM key for d={r.domain}"
            for r in self.dkim
            if r.result == "temperror" and aligned(r.domain, domain, "r")
        ]
        if self.spf.result == "temperror" and aligned(self.spf.domain, domain, "r"):
            unsure.append(f"SPF for {self.spf.domain}")
        return unsure

    @property
    def from_authenticated(self) -> bool:
        return bool(self.from_domains) and (self.dmarc.passed or all(self.authenticates(d) for d in self.from_domains))

    @property
    def lookups(self) -> tuple[dns.Lookup, ...]:
        every = [
            *self.spf.lookups,
            *(self.helo.lookups if self.helo else ()),
            *(lookup for r in self.dkim for lookup in r.lookups),
            *self.dmarc.lookups,
            *self.arc.lookups,
        ]
        return tuple(dict.fromkeys(every))

    def header_value(self) -> str:
        """One Authentication-Results value (RFC 8601), short enough for one line."""
        for room in (len(self.dkim), 2, 1, 0):
            value = _header(self, self.dkim[:room]).header_value()
            if len(value) <= MAX_HEADER:
                return value
        return value[:MAX_HEADER]

    def summary(self) -> list[str]:
        """Each result on one line, without the DNS data: the evidence of a verdict."""
        return [line for line in self.explain() if not line.startswith("    dns:")]

    def explain(self) -> list[str]:
        """Each result and the DNS data it used, for `aup-milter check` and the archive's evidence."""
        lines = [_spf_line(self.spf)]
        lines += [f"    dns: {lookup}" for lookup in self.spf.lookups]
        if self.helo is not None:
            lines.append(_spf_line(self.helo))
            lines += [f"    dns: {lookup}" for lookup in self.helo.lookups]
        if not self.dkim:
            lines.append("dkim: none (the message has no DKIM signature)")
        for r in self.dkim:
            lines.append(
                f"dkim d={r.domain} s={r.selector} a={r.algorithm}: {r.result}" + (f" ({r.reason})" if r.reason else "")
            )
            lines += [f"    dns: {lookup}" for lookup in r.lookups]
        d = self.dmarc
        policy = (
            f"p={d.record.p} sp={d.record.sp} adkim={d.record.adkim} aspf={d.record.aspf} pct={d.record.pct}, "
            if d.record
            else ""
        )
        outcome = f"{policy}applies {d.policy}, disposition {d.disposition}" if d.record else ""
        lines.append(
            f"dmarc header.from={d.from_domain or '(none)'}: {d.result}"
            + (f" ({outcome})" if outcome else "")
            + (f"; {d.reason}" if d.reason else "")
        )
        lines += [f"    dns: {lookup}" for lookup in d.lookups]
        arc = self.arc
        lines.append(
            f"arc: {arc.result}"
            + (f" (sealers {', '.join(arc.sealers)})" if arc.sealers else "")
            + (f"; {arc.reason}" if arc.reason and arc.result != "none" else "")
        )
        lines += [f"    dns: {lookup}" for lookup in arc.lookups]
        return lines


RESULTS: ResultKey[AuthenticationResults] = ResultKey("authentication")


def results(message: Message) -> AuthenticationResults | None:
    """The authentication results of an inbound message, for rules that declare `requires = ("authentication",)`.

    None for mail from inside (the trusted server or an AUTH user: see the
    sender_identity rule) and when the rule is off.
    """
    return message.result(RESULTS)


def from_authenticated(message: Message) -> bool | None:
    """Whether the From identity of an inbound message is authenticated (DMARC pass, or DKIM or SPF
    aligned with every From domain); None when it was not checked (see `results`)."""
    found = results(message)
    return None if found is None else found.from_authenticated


def _spf_line(r: SpfResult) -> str:
    return f"spf {r.identity}={r.sender}: {r.result}" + (
        f" ({r.explanation})" if r.explanation and not r.passed else ""
    )


def _header(r: AuthenticationResults, dkim_results: tuple[DkimResult, ...]) -> authres.AuthenticationResultsHeader:
    parts: list[authres.core.AuthenticationResult] = [
        authres.SPFAuthenticationResult(result=r.spf.result, smtp_mailfrom=r.spf.sender or None)
    ]
    if r.helo is not None:
        parts.append(authres.SPFAuthenticationResult(result=r.helo.result, smtp_helo=r.helo.sender.rpartition("@")[2]))
    if not r.dkim:
        parts.append(authres.DKIMAuthenticationResult(result="none"))
    for d in dkim_results:
        reason = d.reason.split(":", 1)[0][:120] or None  # the short form; explain() has the rest
        item = authres.DKIMAuthenticationResult(
            result=d.result,
            reason=reason,
            header_d=d.domain or None,
            header_s=d.selector or None,
            header_a=d.algorithm or None,
        )
        if d.signature_start:
            item.properties.append(AuthenticationResultProperty("header", "b", d.signature_start))
        parts.append(item)
    dmarc = r.dmarc
    comment = f"p={dmarc.policy} dis={dmarc.disposition}" if dmarc.record else None
    parts.append(
        authres.dmarc.DMARCAuthenticationResult(
            result=dmarc.result, result_comment=comment, header_from=dmarc.from_domain or None
        )
    )
    parts.append(
        authres.arc.ARCAuthenticationResult(result=r.arc.result if r.arc.result in ("pass", "fail") else "none")
    )
    return authres.AuthenticationResultsHeader(authserv_id=r.authserv_id, results=parts)


def authserv_id_of(value: str) -> str:
    """The authserv-id an Authentication-Results value names (after any comments), lower-case."""
    text = value.strip()
    while True:
        match = _COMMENT.match(text)
        if not match:
            break
        text = text[match.end() :]
    if text.startswith('"'):
        return text[1:].split('"', 1)[0].strip().lower()
    return re.split(r"[\s;(]", text, maxsplit=1)[0].lower()


# -- settings ----------------------------------------------------------------


class AuthenticationActions(SettingsTable):
    dmarc_reject: CategoryAction = Field(
        default="reject",
        json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": a DMARC failure whose owner publishes p=reject"},
    )
    dmarc_quarantine: CategoryAction = Field(
        default="hold",
        json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": a DMARC failure whose owner publishes p=quarantine"},
    )
    local_domain: CategoryAction = Field(
        default="reject",
        json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": the agency's own domain from outside, unauthenticated"},
    )


class AuthenticationSettings(PolicySettings):
    directions: list[Direction] = Field(
        default=["inbound"],
        json_schema_extra={
            "fix": 'a list from "inbound", "outbound", "internal"; the checks mean something for "inbound" only'
        },
    )
    action: Literal["tag", "hold", "reject"] = Field(
        default="reject", json_schema_extra={"fix": '"tag", "hold" or "reject": the most any check asks'}
    )
    actions: AuthenticationActions = Field(
        default=AuthenticationActions(),
        json_schema_extra={
            "fix": 'a table such as { dmarc_reject = "reject", dmarc_quarantine = "hold", local_domain = "reject" }'
        },
    )
    authserv_id: str = Field(
        default_factory=socket.getfqdn,
        json_schema_extra={
            "fix": "the gateway's name in Authentication-Results headers, usually the same as [smtp] hostname"
        },
    )
    temporary_errors: Literal["tempfail", "deliver"] = Field(
        default="tempfail",
        json_schema_extra={
            "fix": '"tempfail" (answer 451 so the sender retries) or "deliver" (deliver with the results recorded)'
        },
    )
    exempt_domains: list[str] = Field(
        default=[],
        json_schema_extra={
            "fix": "From domains whose DMARC failures are only recorded (a partner whose list breaks signatures), lower-case"
        },
    )
    trusted_arc_sealers: list[str] = Field(
        default=[],
        json_schema_extra={
            "fix": "domains of forwarders (mailing lists) whose valid ARC seal recording dmarc=pass is trusted, lower-case"
        },
    )
    max_signatures: int = Field(
        default=5, ge=1, le=50, json_schema_extra={"fix": "the most DKIM signatures checked on one message"}
    )
    offload_above: Size = Field(
        default=256 * 1024,
        json_schema_extra={
            "fix": 'the message size above which DKIM hashing runs in a worker process, off the event loop, such as "256KiB"'
        },
    )

    @field_validator("authserv_id")
    @classmethod
    def _token(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.\-_]+", value):
            raise ValueError(f"{value!r} is not a host name")
        return value.lower()

    @field_validator("exempt_domains", "trusted_arc_sealers")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        return [dns.normalise_name(v.lstrip("@")) for v in values]


# -- the rule ----------------------------------------------------------------


class Authentication(Policy):
    name = "authentication"
    description = (
        "Inbound mail is checked with DKIM, SPF and DMARC: failures of p=reject and p=quarantine domains get the "
        "configured action, and the agency's own domains from outside must be authenticated."
    )
    Settings = AuthenticationSettings

    @property
    def resolver(self) -> dns.Resolver:
        if self.services.resolver is not None:  # not `or`: an empty cache has a length of 0
            return self.services.resolver  # type: ignore[no-any-return]
        return dns.resolver_for(DnsSettings())  # a pipeline built without services: the system resolver

    async def check(self, message: Message) -> list[Finding]:  # type: ignore[override]  # the pipeline awaits async rules
        found = await self.authenticate(message)
        message.publish(RESULTS, found)
        return [self._record(message, found), *self._verdicts(message, found)]

    async def authenticate(self, message: Message) -> AuthenticationResults:
        settings: AuthenticationSettings = self.settings  # type: ignore[assignment]
        env = message.envelope
        ip = _client_ip(env.client_ip)
        helo = env.helo.strip()
        sender = spf_sender(normalise_address(env.mail_from), helo)
        resolver = self.resolver
        from_domains = tuple(dict.fromkeys(domain_of(a) for _, a in message.from_addresses if "@" in a))
        # Everything that waits on DNS at once; DMARC is judged when SPF and DKIM are known.
        helo_check = (
            check_spf(resolver, ip=ip, sender=f"postmaster@{helo}", helo=helo, identity="helo")
            if _is_domain(helo) and env.mail_from
            else _nothing()
        )
        spf_result, helo_result, (dkim_results, arc), discoveries = await asyncio.gather(
            check_spf(resolver, ip=ip, sender=sender, helo=helo, identity="mailfrom"),
            helo_check,
            verify_dkim(
                resolver,
                message.raw,
                message.raw_header_values("DKIM-Signature"),
                message.raw_header_values("ARC-Seal"),
                message.raw_header_values("ARC-Message-Signature"),
                max_signatures=settings.max_signatures,
                offload_above=settings.offload_above,
            ),
            asyncio.gather(*(discover(resolver, domain) for domain in from_domains)),
        )
        if helo_result is None and _is_domain(helo):
            helo_result = replace(
                spf_result, identity="helo"
            )  # the null sender: the MAIL FROM check was the HELO check (RFC 7208 2.4)
        if discoveries:
            sample = _sample(message)
            dmarc = worst([judge(d, dkim_results, spf_result, sample) for d in discoveries])
        else:
            dmarc = DmarcResult("none", "", reason="the From header names no domain")
        return AuthenticationResults(
            settings.authserv_id, spf_result, helo_result, tuple(dkim_results), dmarc, arc or NO_ARC, from_domains
        )

    # -- findings -----------------------------------------------------------

    def _record(self, message: Message, found: AuthenticationResults) -> Finding:
        """The results, for the archive and the Authentication-Results header; asks for nothing."""
        settings: AuthenticationSettings = self.settings  # type: ignore[assignment]
        forged = [v for v in message.raw_header_values(HEADER) if authserv_id_of(v) == settings.authserv_id]
        edit = partial(_strip_ours, settings.authserv_id) if forged else None
        summary = (
            f"Authentication results: spf={found.spf.result}, dkim={_dkim_summary(found.dkim)}, "
            f"dmarc={found.dmarc.result}, arc={found.arc.result}."
        )
        if forged:
            summary += f" {len(forged)} incoming {HEADER} header(s) claiming this gateway ({settings.authserv_id}) were removed."
        evidence = found.explain()
        if len(evidence) > MAX_EVIDENCE:
            evidence = [*evidence[:MAX_EVIDENCE], f"... and {len(evidence) - MAX_EVIDENCE} more lines"]
        return self.finding(
            summary, evidence, action="deliver", add_headers=((HEADER, found.header_value()),), edit=edit
        )

    def _verdicts(self, message: Message, found: AuthenticationResults) -> list[Finding]:
        settings: AuthenticationSettings = self.settings  # type: ignore[assignment]
        findings: list[Finding] = []
        arc_vouches = self._arc_vouches(found)
        local = self._local_claims(message, found)
        if local:
            unsure = [u for _, _, domain in local for u in found.unsure_about(domain)]
            if unsure:
                findings.extend(self._temporary(found, unsure))
            elif arc_vouches:
                findings.append(self.finding(self._arc_note(found, "the agency's own domain"), [], action="deliver"))
            else:
                action = effective(settings.actions.local_domain, settings.action)
                if action is not None:
                    findings.append(
                        self.finding(
                            self._local_reason(message, found, local), found.summary(), action=action, reply="550 5.7.1"
                        )
                    )
        local_domains = {domain for _, _, domain in local}
        dmarc = found.dmarc
        if dmarc.result == "temperror":
            findings.extend(self._temporary(found, [dmarc.reason]))
        elif dmarc.result == "fail" and dmarc.from_domain not in local_domains and dmarc.disposition != "none":
            chosen = (
                settings.actions.dmarc_reject if dmarc.disposition == "reject" else settings.actions.dmarc_quarantine
            )
            action = effective(chosen, settings.action)
            if (
                dmarc.from_domain in settings.exempt_domains
                or organisational_domain(dmarc.from_domain) in settings.exempt_domains
            ):
                action = "deliver"
                reason = (
                    f"The message failed DMARC for {dmarc.from_domain} (policy {dmarc.policy}), but the domain is exempt "
                    f"in [policies.{self.name}] exempt_domains; it was delivered. {dmarc.reason}."
                )
                findings.append(self.finding(reason, found.summary(), action=action))
            elif arc_vouches:
                findings.append(
                    self.finding(self._arc_note(found, dmarc.from_domain), found.summary(), action="deliver")
                )
            elif action is not None:
                findings.append(
                    self.finding(self._dmarc_reason(dmarc), found.summary(), action=action, reply="550 5.7.1")
                )
        return findings

    def _local_claims(self, message: Message, found: AuthenticationResults) -> list[tuple[str, str, str]]:
        """(where, address, domain) of each claim to an agency domain that nothing authenticated."""
        claims = []
        for _, address in message.from_addresses:
            domain = domain_of(address)
            if "@" in address and self._is_agency(domain) and not found.authenticates(domain):
                claims.append(("From", address, domain))
        mail_from = normalise_address(message.envelope.mail_from)
        if mail_from and self._is_agency(domain_of(mail_from)) and not found.authenticates(domain_of(mail_from)):
            claims.append(("envelope sender", mail_from, domain_of(mail_from)))
        return claims

    def _is_agency(self, domain: str) -> bool:
        return any(domain == d or domain.endswith(f".{d}") for d in self.directory.domains)

    def _arc_vouches(self, found: AuthenticationResults) -> bool:
        settings: AuthenticationSettings = self.settings  # type: ignore[assignment]
        arc = found.arc
        return (
            arc.result == "pass"
            and arc.newest_says_dmarc_pass
            and any(
                aligned(arc.newest_sealer, s, "s") or arc.newest_sealer.endswith(f".{s}")
                for s in settings.trusted_arc_sealers
            )
        )

    def _arc_note(self, found: AuthenticationResults, what: str) -> str:
        return (
            f"The message did not authenticate {what} itself, but {found.arc.newest_sealer}, a forwarder trusted in "
            f"[policies.{self.name}] trusted_arc_sealers, sealed it with ARC after it passed DMARC there; it was delivered."
        )

    def _temporary(self, found: AuthenticationResults, what: list[str]) -> list[Finding]:
        settings: AuthenticationSettings = self.settings  # type: ignore[assignment]
        reason = (
            f"Authentication could not be completed because a DNS lookup failed temporarily ({'; '.join(what)}). "
            "Please try again later."
        )
        if settings.temporary_errors == "deliver":
            return [
                self.finding(
                    reason.replace("Please try again later.", "It was delivered with the results recorded."),
                    found.summary(),
                    action="deliver",
                )
            ]
        # A reject finding with a 4xx reply: the client keeps the message and retries; nothing is accepted unchecked.
        return [self.finding(reason, found.summary(), action="reject", reply=TEMPFAIL_REPLY)]

    def _local_reason(self, message: Message, found: AuthenticationResults, claims: list[tuple[str, str, str]]) -> str:
        what = " and ".join(f"{where} {address}" for where, address, _ in claims)
        dkim = _dkim_summary(found.dkim)
        return (
            f"The message claims to come from the agency's own domain ({what}) but arrived from outside "
            f"({message.envelope.client_ip}) without authentication: SPF {found.spf.result} for {found.spf.domain}, "
            f"DKIM {dkim}; agency mail must come through the agency's mail server (rule {self.name}). "
            "If you are staff, send from your agency mailbox; if a service sends for the agency, ask IT to list it in "
            "the SPF record or have it sign with the agency's DKIM key."
        )

    def _dmarc_reason(self, dmarc: DmarcResult) -> str:
        return (
            f"The message claims to be from {dmarc.from_domain}, whose owner publishes a DMARC policy of {dmarc.policy}, "
            f"and it failed DMARC: {dmarc.reason} (rule {self.name}). The sender should ask their mail administrator "
            f"to sign it with DKIM for {dmarc.from_domain} or to send it through a server {dmarc.from_domain}'s SPF record lists."
        )


def _strip_ours(authserv_id: str, raw: bytes) -> bytes:
    """Drop incoming Authentication-Results headers that claim our authserv-id (RFC 8601 5)."""
    return remove_headers(raw, HEADER, unless=lambda value: authserv_id_of(value) != authserv_id)


def _dkim_summary(dkim_results: tuple[DkimResult, ...]) -> str:
    if not dkim_results:
        return "none"
    return ", ".join(f"{r.result} (d={r.domain})" for r in dkim_results)


async def _nothing() -> None:
    return None


def _client_ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return value
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def _is_domain(helo: str) -> bool:
    return "." in helo and not helo.startswith("[") and not _looks_like_ip(helo)


def _looks_like_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _sample(message: Message) -> float:
    """A number in [0, 100) for DMARC pct= sampling, the same every time this message is retried."""
    seed = message.header("Message-ID") or message.header_bytes.decode("latin-1")
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8", "surrogateescape")).digest()[:4], "big") % 10_000 / 100
