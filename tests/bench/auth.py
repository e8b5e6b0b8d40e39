"""`make bench-auth`: what the sender checks cost per inbound message, in milliseconds of CPU.

Inbound business mail of the given sizes from a partner that signs with
DKIM (RSA 1024, dkimpy's test key) and publishes SPF and DMARC p=reject;
DNS answers come from zone data in memory behind the production cache, so
the figures are the rules' own work (parsing, hashing, RSA, SPF and DMARC
evaluation), not network waits. The message views the rules share are
computed first, as in `make bench-rules`. Also timed: internal mail, where
the authentication and impersonation rules do not run at all and
sender_identity checks the AUTH user.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import dkim

from milter.config import load_config
from milter.kernel.directory import load_directory
from milter.kernel.dns import CachingResolver, ZoneResolver
from milter.mail.message import Envelope, Message
from policies.base import Services
from policies.rules.authentication import Authentication
from policies.rules.impersonation import Impersonation
from policies.rules.sender_identity import SenderIdentity
from tests.bench.relay import ROOT, make_message
from tests.bench.rules import cpu_ms

VECTORS = ROOT / "tests" / "data" / "auth" / "dkimpy"
PARTNER_IP = "192.0.2.25"


def partner_zone() -> ZoneResolver:
    return ZoneResolver(
        {
            "partner.org": [("TXT", "v=spf1 ip4:192.0.2.0/24 include:_spf.mailhost.example -all")],
            "_spf.mailhost.example": [("TXT", "v=spf1 ip4:198.51.100.0/24 -all")],
            "_dmarc.partner.org": [("TXT", "v=DMARC1; p=reject")],
            "s1._domainkey.partner.org": [("TXT", (VECTORS / "test.txt").read_text().strip())],
            "mx.partner.org": [("A", PARTNER_IP)],
        }
    )


def inbound(size: int, number: int) -> bytes:
    raw = make_message(size, number).replace(
        b"From: Sam Ortiz <sortiz@example.gov>", b"From: Pat Lee <pat@partner.org>"
    )
    return dkim.sign(raw, b"s1", b"partner.org", (VECTORS / "test.private").read_bytes()) + raw


def prepared(raws: list[bytes], envelope: Envelope, direction: str) -> list[Message]:
    found = []
    for raw in raws:
        message = Message(envelope, raw, direction)  # type: ignore[arg-type]
        message.attachment_texts  # noqa: B018 - the shared views first: the rules are timed alone
        message.from_addresses  # noqa: B018
        found.append(message)
    return found


def measure(size: int, count: int) -> dict[str, dict[str, float]]:
    config = load_config(ROOT / "config" / "aup-milter.toml")
    directory = load_directory(config.directory_path)
    services = Services(resolver=CachingResolver(partner_zone()))
    rules = {
        cls.name: cls(config.policies[cls.name], directory, services)
        for cls in (Authentication, SenderIdentity, Impersonation)
    }
    loop = asyncio.new_event_loop()

    def run_auth(message: Message) -> None:
        loop.run_until_complete(rules["authentication"].check(message))

    raws = [inbound(size, number) for number in range(count)]
    outside = Envelope("pat@partner.org", ("sortiz@example.gov",), client_ip=PARTNER_IP, helo="mx.partner.org")
    run_auth(prepared(raws[:1], outside, "inbound")[0])  # warm the DNS cache and the public suffix list
    rules["impersonation"].check(prepared(raws[:1], outside, "inbound")[0])  # build the name index
    results = {
        "inbound": {
            "authentication": round(cpu_ms(run_auth, prepared(raws, outside, "inbound")), 3),
            "impersonation": round(cpu_ms(rules["impersonation"].check, prepared(raws, outside, "inbound")), 3),
        }
    }
    internal = [make_message(size, number) for number in range(count)]
    submitted = Envelope(
        "sortiz@example.gov", ("dwhitfield@example.gov",), client_ip="198.51.100.9", auth_user="sortiz@example.gov"
    )
    results["internal (AUTH)"] = {
        "sender_identity": round(cpu_ms(rules["sender_identity"].check, prepared(internal, submitted, "internal")), 3)
    }
    loop.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    everything = {}
    for size in (int(s) for s in args.sizes.split(",")):
        everything[size] = measure(size, args.count)
        for direction, row in everything[size].items():
            print(f"{size:>8} B {direction:16}", "  ".join(f"{name}={ms:.3f}" for name, ms in row.items()))
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "auth.json").write_text(json.dumps(everything, indent=2))
    print(
        "CPU milliseconds per message (this process only; DKIM of messages over offload_above runs in a worker process); "
        "figures also in bench-results/auth.json"
    )


if __name__ == "__main__":
    main()
