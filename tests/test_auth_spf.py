"""SPF: the official RFC 7208 test suite, through our resolver, and SPF over real DNS.

Every case of rfc7208-tests.yml (openspf.org release 2014.04, shipped with
pyspf) runs through policies.auth.spf.check_spf, the function the gateway
uses, with the suite's zone data served by milter.kernel.dns.ZoneResolver. The
suite's conventions: a name's SPF (type 99) records also stand as its TXT
records when it has no TXT of its own; "TIMEOUT" makes lookups of the name
time out; a case may accept several results, and may name the explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from milter.kernel.dns import DnsPythonResolver, ZoneResolver
from policies.auth.spf import check_spf
from tests.support.auth_dns import DnsServer

SUITE = Path(__file__).parent / "data" / "auth" / "pyspf" / "rfc7208-tests.yml"
KNOWN_FAILURES: dict[str, str] = {}  # case id -> why; none remain


def zone_of(zonedata: dict[str, list[Any]]) -> dict[str, list[tuple[str, Any]]]:
    zone: dict[str, list[tuple[str, Any]]] = {}
    for name, items in zonedata.items():
        entries: list[tuple[str, Any]] = []
        has_txt = False
        for item in items:
            if item == "TIMEOUT":
                entries.append(("TIMEOUT", None))
                continue
            for rdtype, value in item.items():
                has_txt = has_txt or rdtype == "TXT"
                if rdtype in ("TXT", "SPF") and value in ("NONE", ["NONE"]):
                    continue  # "TXT: NONE": the name has no record of this type (and no SPF copy stands in)
                if rdtype == "MX":
                    value = (value[0], value[1])
                entries.append((rdtype, value))
        if not has_txt:  # the suite's SPF records double as TXT records
            entries += [("TXT", value) for rdtype, value in entries if rdtype == "SPF"]
        zone[name] = entries
    return zone


def cases() -> list[Any]:
    found = []
    with SUITE.open("rb") as stream:
        for scenario in yaml.safe_load_all(stream):
            zone = zone_of(scenario.get("zonedata") or {})
            for case_id, case in scenario["tests"].items():
                marks = (
                    [pytest.mark.xfail(reason=KNOWN_FAILURES[case_id], strict=True)]
                    if case_id in KNOWN_FAILURES
                    else []
                )
                found.append(pytest.param(zone, case, id=case_id, marks=marks))
    return found


ALL = cases()


def test_the_whole_suite_is_here():
    assert len(ALL) == 203  # the suite's count: a parse that drops cases would pass quietly


@pytest.mark.parametrize("zone, case", ALL)
async def test_rfc7208_suite(zone, case):
    result = await check_spf(
        ZoneResolver(zone),
        ip=case["host"],
        sender=case["mailfrom"],
        helo=case["helo"],
        identity="mailfrom",
        default_explanation="DEFAULT",
    )
    expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert result.result in expected, f"{case.get('spec')}: {case.get('description', '')}"
    if "explanation" in case:
        assert result.explanation == case["explanation"]


async def test_spf_over_real_dns_follows_includes_and_mx_and_records_each_lookup():
    server = DnsServer(
        {
            "partner.org": [("TXT", "v=spf1 include:_spf.mailhost.example mx -all"), ("MX", (10, "mx.partner.org"))],
            "_spf.mailhost.example": [("TXT", "v=spf1 ip4:198.51.100.0/24 ~all")],
            "mx.partner.org": [("A", "192.0.2.25")],
            "slow.example": [("TIMEOUT", None)],
        }
    ).start()
    try:
        resolver = DnsPythonResolver([server.address], timeout=0.5)
        via_include = await check_spf(
            resolver, ip="198.51.100.7", sender="pat@partner.org", helo="mx.out.example", identity="mailfrom"
        )
        assert (via_include.result, via_include.domain) == ("pass", "partner.org")
        via_mx = await check_spf(
            resolver, ip="192.0.2.25", sender="pat@partner.org", helo="mx.partner.org", identity="mailfrom"
        )
        assert via_mx.passed
        assert [str(lookup) for lookup in via_mx.lookups][:1] == [
            'partner.org TXT: "v=spf1 include:_spf.mailhost.example mx -all" (ttl 300s)'
        ]
        assert any(str(lookup).startswith("mx.partner.org A: 192.0.2.25") for lookup in via_mx.lookups)
        refused = await check_spf(
            resolver, ip="203.0.113.9", sender="pat@partner.org", helo="mail.evil.example", identity="mailfrom"
        )
        assert refused.result == "fail"
        unknown = await check_spf(
            resolver, ip="203.0.113.9", sender="x@slow.example", helo="h.example", identity="mailfrom"
        )
        assert unknown.result == "temperror" and "slow.example TXT" in unknown.explanation
        bounce = await check_spf(
            resolver, ip="192.0.2.25", sender="postmaster@mx.partner.org", helo="mx.partner.org", identity="helo"
        )
        assert (bounce.result, bounce.domain) == ("none", "mx.partner.org")
    finally:
        server.stop()
