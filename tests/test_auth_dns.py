"""The resolver the sender checks ask: real DNS over UDP and TCP, answers cached with their TTL, failures never a pass."""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import pytest

from milter.config import load_config
from milter.kernel.dns import (
    CachingResolver,
    DnsPythonResolver,
    DnsTemporaryError,
    TracingResolver,
    ZoneResolver,
    resolver_for,
)
from milter.kernel.settings import ConfigError, DnsSettings
from tests.conftest import write_config
from tests.support.auth_dns import DnsServer

LONG_KEY = "v=DKIM1; k=rsa; p=" + "A" * 1400  # several TXT strings, and more than a UDP answer holds: TCP


@pytest.fixture(scope="module")
def server():
    running = DnsServer(
        {
            "partner.org": [
                ("TXT", "v=spf1 ip4:192.0.2.0/24 -all"),
                ("MX", (10, "mx.partner.org")),
                ("A", "192.0.2.10"),
            ],
            "mx.partner.org": [("A", "192.0.2.25"), ("AAAA", "2001:db8::25")],
            "alias.partner.org": [("CNAME", "mx.partner.org")],
            "25.2.0.192.in-addr.arpa": [("PTR", "mx.partner.org")],
            "short.partner.org": [("TXT", "v=spf1 -all", 2)],
            "big._domainkey.partner.org": [("TXT", LONG_KEY)],
            "slow.partner.org": [("TIMEOUT", None)],
            "broken.partner.org": [("SERVFAIL", None)],
        },
        negative_ttl=45,
    ).start()
    yield running
    running.stop()


def production(server: DnsServer, timeout: float = 1.0) -> DnsPythonResolver:
    return DnsPythonResolver([server.address], timeout=timeout)


async def test_real_answers_of_every_type(server):
    resolver = production(server)
    txt = await resolver.query("partner.org", "TXT")
    assert (txt.status, txt.txt(), txt.ttl) == ("NOERROR", [b"v=spf1 ip4:192.0.2.0/24 -all"], 300)
    assert (await resolver.query("partner.org", "MX")).records == ((10, "mx.partner.org"),)
    assert (await resolver.query("mx.partner.org", "A")).records == ("192.0.2.25",)
    assert (await resolver.query("mx.partner.org", "AAAA")).records == ("2001:db8::25",)
    assert (await resolver.query("25.2.0.192.in-addr.arpa", "PTR")).records == ("mx.partner.org",)
    assert (await resolver.query("ALIAS.Partner.org.", "A")).records == (
        "192.0.2.25",
    )  # CNAME followed, name normalised


async def test_a_long_record_comes_whole_over_tcp(server):
    answer = await production(server).query("big._domainkey.partner.org", "TXT")
    assert answer.txt() == [LONG_KEY.encode()]
    assert len(answer.records[0]) == 6  # six strings of at most 255 bytes, joined
    assert ("big._domainkey.partner.org", "TXT") in server.tcp_queries  # truncated over UDP, asked again over TCP
    assert await production(server).txt("big._domainkey.partner.org") == [LONG_KEY.encode()]


async def test_negative_answers_carry_the_soa_minimum(server):
    resolver = production(server)
    missing = await resolver.query("nothing.partner.org", "TXT")
    assert (missing.status, missing.records, missing.ttl) == ("NXDOMAIN", (), 45)
    nodata = await resolver.query("mx.partner.org", "TXT")
    assert (nodata.status, nodata.ttl) == ("NODATA", 45)


async def test_a_timeout_or_servfail_is_a_temporary_error_not_an_empty_answer(server):
    resolver = production(server, timeout=0.5)
    with pytest.raises(DnsTemporaryError, match=r"no answer within 0\.5s"):
        await resolver.query("slow.partner.org", "TXT")
    with pytest.raises(DnsTemporaryError, match="no server could answer"):
        await resolver.query("broken.partner.org", "TXT")


async def test_no_server_listening_is_a_temporary_error():
    resolver = DnsPythonResolver(["127.0.0.1:9"], timeout=0.5)  # the discard port: nothing answers DNS there
    with pytest.raises(DnsTemporaryError):
        await resolver.query("partner.org", "TXT")


async def test_a_machine_without_nameservers_still_starts_and_every_lookup_is_temporary(tmp_path, monkeypatch):
    empty = tmp_path / "resolv.conf"
    empty.write_text("# no nameserver here\n")
    real_init = dns.asyncresolver.Resolver.__init__

    def reading_empty(self, filename="/etc/resolv.conf", configure=True):  # as if /etc/resolv.conf were this file
        real_init(self, str(empty), configure)

    monkeypatch.setattr(dns.asyncresolver.Resolver, "__init__", reading_empty)
    resolver = DnsPythonResolver([])
    with pytest.raises(DnsTemporaryError, match="no nameserver is configured"):
        await resolver.query("partner.org", "TXT")


async def test_the_cache_keeps_answers_for_their_ttl_and_negative_ones_too(server):
    now = [1000.0]
    upstream = production(server)
    cache = CachingResolver(upstream, size=100, clock=lambda: now[0])
    before = len(server.queries)
    first = await cache.query("partner.org", "TXT")
    again = await cache.query("PARTNER.ORG.", "TXT")
    assert (first.cached, again.cached, again.txt()) == (False, True, first.txt())
    await cache.query("nothing.partner.org", "TXT")
    assert (await cache.query("nothing.partner.org", "TXT")).cached
    assert len(server.queries) - before == 2  # one question each reached the server
    now[0] += 46  # past the negative TTL (45 s), before the positive one (300 s)
    assert not (await cache.query("nothing.partner.org", "TXT")).cached
    assert (await cache.query("partner.org", "TXT")).cached
    now[0] += 300
    assert not (await cache.query("partner.org", "TXT")).cached


async def test_the_cache_caps_ttls_is_bounded_and_never_keeps_a_failure():
    now = [0.0]
    zone = ZoneResolver(
        {
            "a.example": [("TXT", "a", 86400)],
            "b.example": [("TXT", "b")],
            "c.example": [("TXT", "c")],
            "slow.example": [("TIMEOUT", None)],
        }
    )
    cache = CachingResolver(zone, size=2, max_ttl=60, clock=lambda: now[0])
    await cache.query("a.example", "TXT")
    now[0] = 61
    assert not (await cache.query("a.example", "TXT")).cached  # a day's TTL, kept a minute
    await cache.query("b.example", "TXT")
    await cache.query("c.example", "TXT")
    assert cache.size() == 2  # the least recently used went
    for _ in range(2):
        with pytest.raises(DnsTemporaryError):
            await cache.query("slow.example", "TXT")
    assert zone.queries.count(("slow.example", "TXT")) == 2  # asked again: a failure is not an answer
    off = CachingResolver(zone, size=0)
    await off.query("b.example", "TXT")
    assert not (await off.query("b.example", "TXT")).cached


async def test_zone_data_follows_cnames_and_times_out_where_marked():
    zone = ZoneResolver.from_text("""
        # name [ttl] type value
        example.org 60 TXT "v=spf1 " "-all"
        www.example.org CNAME example.org
        example.org MX 10 mx.example.org
        loop.example.org CNAME loop.example.org
    """)
    assert (await zone.query("www.example.org", "TXT")).txt() == [b"v=spf1 -all"]
    assert (await zone.query("example.org", "TXT")).ttl == 60
    assert (await zone.query("example.org", "MX")).records == ((10, "mx.example.org"),)
    assert (await zone.query("loop.example.org", "A")).status == "NODATA"
    assert (await zone.query("none.example.org", "A")).status == "NXDOMAIN"
    marked = ZoneResolver({"x.example": [("A", "192.0.2.1"), ("TIMEOUT", None)], "y.example": [("TXT", "TIMEOUT")]})
    assert (await marked.query("x.example", "A")).records == ("192.0.2.1",)
    with pytest.raises(DnsTemporaryError):
        await marked.query("x.example", "TXT")
    with pytest.raises(DnsTemporaryError):
        await marked.query("y.example", "TXT")
    with pytest.raises(ValueError, match="zone line 1"):
        ZoneResolver.from_text("example.org BOGUS x")


async def test_tracing_keeps_each_lookup_with_its_answer_for_explanations(server):
    tracer = TracingResolver(production(server, timeout=0.5))
    await tracer.query("partner.org", "TXT")
    await tracer.query("nothing.partner.org", "A")
    with pytest.raises(DnsTemporaryError):
        await tracer.query("slow.partner.org", "TXT")
    lines = [str(lookup) for lookup in tracer.lookups]
    assert lines[0] == 'partner.org TXT: "v=spf1 ip4:192.0.2.0/24 -all" (ttl 300s)'
    assert lines[1] == "nothing.partner.org A: NXDOMAIN (ttl 45s)"
    assert lines[2].startswith("slow.partner.org TXT: temporary error (no answer within 0.5s")


async def test_many_lookups_at_once_share_one_resolver(server):
    resolver = resolver_for(DnsSettings(nameservers=(server.address,), timeout=1.0))
    answers = await asyncio.gather(
        *(resolver.query(f"n{i}.partner.org", "A") for i in range(50)),
        *(resolver.query("mx.partner.org", "A") for _ in range(50)),
    )
    assert [a.status for a in answers[:50]] == ["NXDOMAIN"] * 50
    assert {a.records for a in answers[50:]} == {("192.0.2.25",)}
    assert resolver_for(DnsSettings(nameservers=(server.address,), timeout=1.0)) is resolver  # one cache per settings


def test_dns_settings_say_what_is_wrong(tmp_path):
    path = write_config(
        tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused", {"dns": {"nameservers": ["ns1.example.gov"]}}
    )
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert bad.value.key == "dns.nameservers" and "not an IP address" in bad.value.problem
    path = write_config(tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused", {"dns": {"timeout": "2m"}})
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert bad.value.key == "dns.timeout" and "rule_timeout" in bad.value.fix
    path = write_config(
        tmp_path,
        "sqlite:///:memory:",
        "maildir:/tmp/unused",
        {"dns": {"nameservers": ["192.0.2.53", "[2001:db8::53]:5353", "127.0.0.1:5300"], "timeout": "3s"}},
    )
    settings = load_config(path).settings.dns
    assert settings.nameservers == ("192.0.2.53", "[2001:db8::53]:5353", "127.0.0.1:5300") and settings.timeout == 3.0
    resolver = DnsPythonResolver(settings.nameservers)
    assert [(n.address, n.port) for n in resolver.resolver.nameservers] == [
        ("192.0.2.53", 53),
        ("2001:db8::53", 5353),
        ("127.0.0.1", 5300),
    ]
