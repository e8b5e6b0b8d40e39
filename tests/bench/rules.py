"""`make bench-rules`: what each rule costs per message, in milliseconds of CPU.

Every rule in the registry runs alone on the same messages (plain business
text of the given sizes, and the views already computed so a rule is timed
alone), for inbound, internal and outbound mail. Inbound mail comes from an
outside client and its DNS lookups are answered from local zone data (no
records), so the sender checks run without a network. The rules' share is what decides
how close the full pipeline gets to a bare relay (see `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import time

from milter.config import load_config
from milter.kernel.directory import load_directory
from milter.kernel.dns import ZoneResolver
from milter.mail.message import Envelope, Message
from policies.base import Services
from policies.registry import POLICIES
from tests.bench.relay import ROOT, make_message

# direction: (envelope sender, recipient, client address, trusted)
DIRECTIONS = {
    "inbound": ("pat@county.org", "dwhitfield@example.gov", "198.51.100.7", False),
    "internal": ("sortiz@example.gov", "dwhitfield@example.gov", "127.0.0.2", True),
    "outbound": ("sortiz@example.gov", "partner@county.org", "127.0.0.2", True),
}


def messages(raws: list[bytes], direction: str) -> list[Message]:
    found = []
    sender, rcpt, client, trusted = DIRECTIONS[direction]
    for raw in raws:
        if direction == "inbound":
            raw = raw.replace(b"From: Sam Ortiz <sortiz@example.gov>", b"From: Pat Lee <pat@county.org>")
        message = Message(Envelope(sender, (rcpt,), client_ip=client, trusted=trusted), raw, direction)
        message.attachment_texts  # noqa: B018 - compute the shared views first: the rules are timed alone
        message.archive_members  # noqa: B018
        found.append(message)
    return found


def cpu_ms(run, items: list[Message]) -> float:  # type: ignore[no-untyped-def]
    started = time.process_time()
    for item in items:
        run(item)
    return (time.process_time() - started) * 1000 / len(items)


def checker(policy, loop: asyncio.AbstractEventLoop):  # type: ignore[no-untyped-def]
    """A plain call for rules whose check is async (they wait on DNS or clamd)."""
    if inspect.iscoroutinefunction(policy.check):
        return lambda message: loop.run_until_complete(policy.check(message))
    return policy.check


def measure(size: int, count: int) -> dict[str, dict[str, float]]:
    config = load_config(ROOT / "config" / "aup-milter.toml")
    directory = load_directory(config.directory_path)
    raws = [make_message(size, number) for number in range(count)]
    services = Services(resolver=ZoneResolver({}))
    loop = asyncio.new_event_loop()
    results: dict[str, dict[str, float]] = {}
    for direction in DIRECTIONS:
        row: dict[str, float] = {}
        for policy_class in POLICIES:
            policy = policy_class(config.policies[policy_class.name], directory, services)
            if policy.settings.mode == "off" or direction not in policy.settings.directions:
                continue
            check = checker(policy, loop)
            check(messages(raws[:1], direction)[0])  # warm caches and compiled patterns
            row[policy.name] = round(cpu_ms(check, messages(raws, direction)), 3)
        row["views"] = round(
            cpu_ms(
                lambda m: (m.attachment_texts, m.archive_members),
                [Message(Envelope("a@example.gov", ("b@example.gov",)), raw, direction) for raw in raws],
            ),
            3,
        )
        row["all rules"] = round(sum(v for k, v in row.items() if k != "views"), 3)
        results[direction] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000,100000")
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    everything = {}
    for size in (int(s) for s in args.sizes.split(",")):
        results = measure(size, args.count)
        everything[size] = results
        for direction, row in results.items():
            print(f"{size:>7} B {direction:9}", "  ".join(f"{name}={ms:.2f}" for name, ms in row.items()))
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "rules.json").write_text(json.dumps(everything, indent=2))
    print("CPU milliseconds per message; figures also in bench-results/rules.json")


if __name__ == "__main__":
    main()
