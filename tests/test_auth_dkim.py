"""DKIM and ARC verification against published test vectors and local DNS data.

The RFC 6376 A.1 message as RFC 8463 signed it (ed25519 and RSA), the same
message signed again with each of dkimpy's test keys, dkimpy's own test
messages and a message signed by another implementation (Exim) all verify
against the key records in tests/data/auth/dkimpy.zone; a one-byte change in
a signed body fails them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dkim
import pytest

from milter.kernel.dns import ZoneResolver
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.auth import dkim as dkim_check
from policies.auth.dkim import verify

DATA = Path(__file__).parent / "data" / "auth"
VECTORS = DATA / "dkimpy"
ZONE_TEXT = (DATA / "dkimpy.zone").read_text()
CANONICALIZATIONS = [(h, b) for h in (b"simple", b"relaxed") for b in (b"simple", b"relaxed")]


def zone(extra: str = "") -> ZoneResolver:
    return ZoneResolver.from_text(ZONE_TEXT + "\n" + extra)


def read(name: str) -> bytes:
    """A vector as the relay hands it on: CRLF line endings (dkimpy reads either)."""
    return normalise_line_endings((VECTORS / name).read_bytes())[0]


def as_message(raw: bytes) -> Message:
    return Message(Envelope("sender@example.com", ("sortiz@example.gov",), client_ip="192.0.2.1"), raw, "inbound")


async def check(raw: bytes, resolver: ZoneResolver | None = None, **options: int):
    message = as_message(raw)
    return await verify(
        resolver or zone(),
        raw,
        message.raw_header_values("DKIM-Signature"),
        message.raw_header_values("ARC-Seal"),
        message.raw_header_values("ARC-Message-Signature"),
        **options,
    )


def flip_one_body_byte(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    position = next(i for i, byte in enumerate(body) if chr(byte).isalpha())
    changed = body[:position] + bytes([body[position] ^ 0x20]) + body[position + 1 :]  # one letter's case
    return head + b"\r\n\r\n" + changed


async def test_the_rfc8463_example_verifies_with_both_signatures():
    results, arc = await check(read("rfc6376.signed.msg"))
    assert [(r.result, r.domain, r.selector, r.algorithm) for r in results] == [
        ("pass", "football.example.com", "brisbane", "ed25519-sha256"),
        ("pass", "football.example.com", "test", "rsa-sha256"),
    ]
    assert arc.result == "none"
    assert 'brisbane._domainkey.football.example.com TXT: "v=DKIM1; k=ed25519;' in str(results[0].lookups[0])


@pytest.mark.parametrize(
    "key, selector, domain, algorithm",
    [
        ("test.private", b"test", b"football.example.com", b"rsa-sha256"),
        ("2048_testkey.key", b"big", b"example.com", b"rsa-sha256"),
        ("rfc8032_7_1.key", b"brisbane", b"football.example.com", b"ed25519-sha256"),
        ("ed25519test.key", b"test", b"example.net", b"ed25519-sha256"),
    ],
    ids=["rsa-1024", "rsa-2048", "ed25519-rfc8032", "ed25519-dkimpy"],
)
async def test_the_rfc6376_example_signed_with_each_test_key_verifies(key, selector, domain, algorithm):
    message = read("rfc6376.msg")
    for canonicalize in CANONICALIZATIONS:
        signature = dkim.sign(
            message,
            selector,
            domain,
            (VECTORS / key).read_bytes(),
            canonicalize=canonicalize,
            signature_algorithm=algorithm,
        )
        (result,), _ = await check(signature + message)
        assert (result.result, result.domain, result.algorithm) == ("pass", domain.decode(), algorithm.decode()), (
            canonicalize
        )


async def test_dkimpys_test_messages_verify():
    signed = dkim.sign(read("test.message"), b"test", b"example.com", (VECTORS / "test.private").read_bytes())
    (result,), _ = await check(signed + read("test.message"))
    assert result.passed
    # A real 2011 message already signed by kitterman.com, signed again: ours passes, theirs has no key here.
    mbox = read("message.mbox")
    signed = dkim.sign(mbox, b"test", b"example.com", (VECTORS / "test.private").read_bytes())
    ours, theirs = (await check(signed + mbox))[0]
    assert (ours.result, ours.domain) == ("pass", "example.com")
    assert (theirs.result, theirs.domain) == ("permerror", "kitterman.com")
    assert theirs.reason == "no key is published at 2007-00._domainkey.kitterman.com"


async def test_a_message_signed_by_another_implementation_verifies():
    (result,), _ = await check(read("ed25519test2.msg"))  # signed by Exim's prototype
    assert (result.result, result.domain, result.selector) == ("pass", "test.ex", "sed")


@pytest.mark.parametrize("name", ["rfc8463-example", "rsa-signed", "ed25519-signed"])
async def test_a_one_byte_change_in_a_signed_body_fails(name):
    raw = {
        "rfc8463-example": read("rfc6376.signed.msg"),
        "rsa-signed": dkim.sign(read("test.message"), b"test", b"example.com", (VECTORS / "test.private").read_bytes())
        + read("test.message"),
        "ed25519-signed": dkim.sign(
            read("rfc6376.msg"),
            b"test",
            b"example.net",
            (VECTORS / "ed25519test.key").read_bytes(),
            signature_algorithm=b"ed25519-sha256",
        )
        + read("rfc6376.msg"),
    }[name]
    assert all(r.passed for r in (await check(raw))[0])
    changed = flip_one_body_byte(raw)
    assert len(changed) == len(raw) and changed != raw
    results, _ = await check(changed)
    assert results and all(r.result == "fail" for r in results)
    assert all(r.reason == "body hash mismatch: the body was changed after it was signed" for r in results)


async def test_a_changed_signed_header_fails():
    raw = dkim.sign(read("test.message"), b"test", b"example.com", (VECTORS / "test.private").read_bytes()) + read(
        "test.message"
    )
    (result,), _ = await check(raw.replace(b"Subject: Testing", b"Subject: Testing!"))
    assert result.result == "fail" and "does not match" in result.reason


async def test_missing_broken_and_unreachable_keys_are_told_apart():
    raw = dkim.sign(read("test.message"), b"gone", b"example.com", (VECTORS / "test.private").read_bytes()) + read(
        "test.message"
    )
    (missing,), _ = await check(raw)
    assert (missing.result, missing.reason) == ("permerror", "no key is published at gone._domainkey.example.com")
    (broken,), _ = await check(raw, zone('gone._domainkey.example.com TXT "v=DKIM1; k=rsa; p=notbase64!"'))
    assert broken.result == "permerror" and "key" in broken.reason
    (timeout,), _ = await check(raw, zone("gone._domainkey.example.com TXT TIMEOUT"))
    assert timeout.result == "temperror" and "temporarily" in timeout.reason
    short = dkim.sign(read("test.message"), b"test", b"example.com", (VECTORS / "test.private").read_bytes())
    (syntax,), _ = await check(short.replace(b"a=rsa-sha256", b"a=rsa-md5") + read("test.message"))
    assert syntax.result in ("neutral", "permerror", "fail") and not syntax.passed


async def test_only_the_first_signatures_are_checked():
    message = read("test.message")
    for index in range(4):
        message = dkim.sign(message, b"test", b"example.com", (VECTORS / "test.private").read_bytes()) + message
        assert index >= 0
    results, _ = await check(message, max_signatures=2)
    assert len(results) == 2 and all(r.passed for r in results)


async def test_a_big_message_is_hashed_off_the_event_loop(monkeypatch):
    body = ("A line of an attachment that makes the message big enough to notice.\r\n" * 120_000).encode()  # ~8.5 MB
    message = read("test.message").replace(b"This is a test message.\r\n", body)
    raw = (
        dkim.sign(
            message,
            b"test",
            b"example.com",
            (VECTORS / "test.private").read_bytes(),
            canonicalize=(b"relaxed", b"relaxed"),
        )
        + message
    )
    offloaded = []
    real_pool = dkim_check._processes

    def spy():
        offloaded.append(True)
        return real_pool()

    monkeypatch.setattr(dkim_check, "_processes", spy)
    await check(read("rfc6376.signed.msg"), offload_above=0)  # start the worker processes before timing
    offloaded.clear()
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    (result,), _ = await check(raw, offload_above=256 * 1024)
    took = time.monotonic() - started
    ticking.cancel()
    assert result.passed and offloaded == [True]
    # dkimpy needs about a second on this message; the event loop kept turning all the while.
    assert took > 0.3 and max(gaps) < 0.2, (max(gaps), took)
    offloaded.clear()
    small, _ = await check(
        dkim.sign(read("test.message"), b"test", b"example.com", (VECTORS / "test.private").read_bytes())
        + read("test.message")
    )
    assert small[0].passed and offloaded == []  # small messages are verified inline: a process hop costs more


# -- ARC ----------------------------------------------------------------------

ARC_ZONE = 'test._domainkey.lists.example.org TXT "' + (VECTORS / "test.txt").read_text().strip() + '"'


def arc_sealed(message: bytes) -> bytes:
    seal = dkim.arc_sign(
        message, b"test", b"lists.example.org", (VECTORS / "test.private").read_bytes(), b"lists.example.org"
    )
    return b"".join(seal) + message


async def test_an_arc_chain_sealed_with_a_test_key_validates():
    _, arc = await check(arc_sealed(read("test.message")), zone(ARC_ZONE))
    assert (arc.result, arc.sealers, arc.newest_says_dmarc_pass) == ("pass", ("lists.example.org",), True)
    assert any("test._domainkey.lists.example.org" in str(lookup) for lookup in arc.lookups)


async def test_a_changed_arc_sealed_message_fails_the_chain():
    _, arc = await check(flip_one_body_byte(arc_sealed(read("test.message"))), zone(ARC_ZONE))
    assert arc.result == "fail"
    _, arc = await check(arc_sealed(read("test.message")), zone("test._domainkey.lists.example.org TIMEOUT"))
    assert arc.result == "fail" and "temporarily" in arc.reason
