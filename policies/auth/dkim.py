"""DKIM (RFC 6376, RFC 8463 ed25519) and ARC (RFC 8617) verification with dkimpy.

The keys every signature and seal needs are looked up first, all at once, on
the event loop; then dkimpy verifies with those answers. Parsing, canonicalising
and hashing the body is CPU work that holds the GIL in long C calls (dkimpy
takes over a second on an 8 MB message with relaxed canonicalisation), so for
big messages it runs in a separate process: a thread would still stall the
event loop, and with it every other SMTP session.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from milter.kernel.dns import DnsTemporaryError, Lookup, Resolver, TracingResolver, normalise_name

DKIM_RESULTS = ("pass", "fail", "neutral", "permerror", "temperror")
MAX_ARC_SETS = 50  # RFC 8617 5.1.1.1
WORKERS = 2
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
_DMARC_PASS = re.compile(r"\bdmarc\s*=\s*pass\b", re.IGNORECASE)


@dataclass(frozen=True)
class DkimResult:
    result: str  # one of DKIM_RESULTS
    domain: str  # d=
    selector: str  # s=
    algorithm: str = ""  # a=
    identity: str = ""  # i=
    signature_start: str = ""  # the first characters of b=, to tell signatures apart (RFC 6008)
    reason: str = ""  # why it is not a pass
    lookups: tuple[Lookup, ...] = ()

    @property
    def passed(self) -> bool:
        return self.result == "pass"


@dataclass(frozen=True)
class ArcResult:
    result: str  # "pass", "fail" or "none" (RFC 8617 chain validation status)
    sealers: tuple[str, ...] = ()  # d= of each ARC-Seal, oldest first
    newest_says_dmarc_pass: bool = False  # the newest ARC-Authentication-Results records dmarc=pass
    reason: str = ""
    lookups: tuple[Lookup, ...] = ()

    @property
    def newest_sealer(self) -> str:
        return self.sealers[-1] if self.sealers else ""


NO_ARC = ArcResult("none")


class _Notes:
    """A logger for dkimpy that keeps its error messages: they say why a signature failed."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: object, *args: object, **kwargs: object) -> None:
        self.errors.append(str(message) % args if args else str(message))

    def debug(self, *args: object, **kwargs: object) -> None:
        pass

    info = warning = debug

    def isEnabledFor(self, level: int) -> bool:  # the logging API's name
        return False


@dataclass(frozen=True)
class _Signature:
    tags: dict[bytes, bytes] | None  # None: the header could not be parsed
    key_name: str
    error: str = ""

    def tag(self, name: bytes) -> str:
        return (self.tags or {}).get(name, b"").decode("ascii", "replace").strip()


def _parse(value: str) -> _Signature:
    try:
        tags = parse_tag_value(value.encode("utf-8", "surrogateescape"))
    except (InvalidTagValueList, ValueError) as exc:
        return _Signature(None, "", f"the signature cannot be parsed: {exc}")
    selector = tags.get(b"s", b"").decode("ascii", "replace").strip()
    domain = tags.get(b"d", b"").decode("ascii", "replace").strip()
    if not selector or not domain:
        return _Signature(tags, "", "the signature has no s= or d= tag")
    return _Signature(tags, normalise_name(f"{selector}._domainkey.{domain}"))


@dataclass(frozen=True)
class _Key:
    """A key record lookup as plain data (it may cross to a worker process)."""

    records: tuple[bytes, ...]
    error: str  # why the lookup failed temporarily; "" when it was answered
    lookups: tuple[Lookup, ...]


async def _fetch(resolver: Resolver, names: Iterable[str]) -> dict[str, _Key]:
    """Every key record at once; each with the lookups that found it."""

    async def one(name: str) -> _Key:
        tracer = TracingResolver(resolver)
        try:
            return _Key(tuple(await tracer.txt(name)), "", tuple(tracer.lookups))
        except DnsTemporaryError as exc:
            return _Key((), exc.reason or str(exc), tuple(tracer.lookups))

    unique = sorted(set(filter(None, names)))
    answers = await asyncio.gather(*(one(name) for name in unique))
    return dict(zip(unique, answers, strict=True))


def _processes() -> ProcessPoolExecutor:
    """Worker processes for big messages, started on first use; forkserver, so no thread of ours is forked."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("forkserver"))
        return _pool


async def verify(
    resolver: Resolver,
    raw: bytes,
    dkim_headers: list[str],
    arc_seals: list[str],
    arc_signatures: list[str],
    *,
    max_signatures: int = 5,
    offload_above: int = 256 * 1024,
) -> tuple[list[DkimResult], ArcResult]:
    """The result of each DKIM signature (at most max_signatures, topmost first) and of the ARC chain."""
    signatures = [_parse(value) for value in dkim_headers[:max_signatures]]
    seals = [_parse(value) for value in arc_seals[:MAX_ARC_SETS]]
    arc_sigs = [_parse(value) for value in arc_signatures[:MAX_ARC_SETS]]
    if not signatures and not seals:
        return [], NO_ARC
    keys = await _fetch(resolver, (s.key_name for s in (*signatures, *seals, *arc_sigs)))
    if len(raw) <= offload_above:
        return _verify_all(raw, signatures, seals, arc_sigs, keys)
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_processes(), _verify_all, raw, signatures, seals, arc_sigs, keys)
    except BrokenProcessPool:
        global _pool
        with _pool_lock:
            _pool = None  # a worker died (killed, out of memory): the next message starts new ones
        raise


def _verify_all(
    raw: bytes, signatures: list[_Signature], seals: list[_Signature], arc_sigs: list[_Signature], keys: dict[str, _Key]
) -> tuple[list[DkimResult], ArcResult]:
    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        found = keys.get(normalise_name(name))
        if found is None or found.error or not found.records:
            return None
        return found.records[0]  # the first record, as dkimpy's own lookup does

    results = [_verify_one(raw, index, signature, keys, dnsfunc) for index, signature in enumerate(signatures)]
    return results, _verify_arc(raw, seals, arc_sigs, keys, dnsfunc) if seals else NO_ARC


def _verify_one(raw: bytes, index: int, signature: _Signature, keys: dict[str, _Key], dnsfunc: Any) -> DkimResult:
    domain, selector = signature.tag(b"d").lower(), signature.tag(b"s")
    b_tag = re.sub(r"\s+", "", signature.tag(b"b"))[:8]
    base: dict[str, Any] = {
        "domain": domain,
        "selector": selector,
        "algorithm": signature.tag(b"a"),
        "identity": signature.tag(b"i"),
        "signature_start": b_tag,
    }
    if signature.error:
        return DkimResult("neutral" if signature.tags is None else "permerror", reason=signature.error, **base)
    key = keys[signature.key_name]
    base["lookups"] = key.lookups
    if key.error:
        return DkimResult("temperror", reason=f"the key lookup failed temporarily ({key.error})", **base)
    if not key.records:
        return DkimResult("permerror", reason=f"no key is published at {signature.key_name}", **base)
    notes = _Notes()
    try:
        verifier = dkim.DKIM(raw, logger=notes, minkey=1024)
        passed = verifier.verify(idx=index, dnsfunc=dnsfunc)
    except dkim.ValidationError as exc:  # body hash mismatch, expired, bad tags
        reason = str(exc)
        if reason.startswith("body hash mismatch"):
            reason = "body hash mismatch: the body was changed after it was signed"
        return DkimResult("fail", reason=reason, **base)
    except (dkim.KeyFormatError, dkim.UnknownKeyTypeError, dkim.NaClNotFoundError) as exc:
        return DkimResult("permerror", reason=f"the key cannot be used: {exc}", **base)
    except dkim.DKIMException as exc:  # the message or the signature is malformed
        return DkimResult("neutral", reason=str(exc), **base)
    if passed:
        return DkimResult("pass", **base)
    if notes.errors:
        return DkimResult("permerror", reason=f"the key cannot be used: {notes.errors[-1]}", **base)
    return DkimResult("fail", reason="the signature does not match the signed header fields", **base)


def _verify_arc(
    raw: bytes, seals: list[_Signature], arc_sigs: list[_Signature], keys: dict[str, _Key], dnsfunc: Any
) -> ArcResult:
    lookups = tuple(
        dict.fromkeys(lookup for s in (*seals, *arc_sigs) if s.key_name in keys for lookup in keys[s.key_name].lookups)
    )
    ordered = sorted(seals, key=lambda s: int(s.tag(b"i")) if s.tag(b"i").isdigit() else 0)
    sealers = tuple(s.tag(b"d").lower() for s in ordered)
    failed = [s.key_name for s in (*seals, *arc_sigs) if s.key_name in keys and keys[s.key_name].error]
    if failed:
        return ArcResult("fail", sealers, reason=f"a key lookup failed temporarily ({failed[0]})", lookups=lookups)
    notes = _Notes()
    try:
        chain, instances, comment = dkim.ARC(raw, logger=notes, minkey=1024).verify(dnsfunc=dnsfunc)
    except dkim.DKIMException as exc:
        return ArcResult("fail", sealers, reason=str(exc), lookups=lookups)
    status = (
        chain.decode("ascii", "replace") if isinstance(chain, bytes) else "fail"
    )  # None: an earlier seal reported cv=fail
    sets = [r for r in instances or [] if isinstance(r, dict)]
    newest = max(sets, key=lambda r: int(r.get("instance", 0)), default={})
    aar = newest.get("aar-value", b"")
    says_pass = bool(_DMARC_PASS.search(aar.decode("utf-8", "replace") if isinstance(aar, bytes) else str(aar)))
    return ArcResult(status, sealers, says_pass, str(comment or ""), lookups)
