"""`make bench-rules`: what each rule costs per message, in milliseconds of CPU.

Every rule in the registry runs alone on the same messages (plain business
text of the given sizes, and the views already computed so a rule is timed
alone), for internal and outbound mail. The rules' share is what decides
how close the full pipeline gets to a bare relay (see `make bench`).
"""

from __future__ import annotations

import argparse
import json
import time

from milter.directory import load_directory
from milter.message import Envelope, Message
from milter.settings import load_config
from policies.base import Services
from policies.registry import POLICIES
from tests.bench.relay import ROOT, make_message

DIRECTIONS = {"internal": "dwhitfield@example.gov", "outbound": "partner@county.org"}


def messages(raws: list[bytes], direction: str) -> list[Message]:
    found = []
    for raw in raws:
        message = Message(Envelope("sortiz@example.gov", (DIRECTIONS[direction],), client_ip="127.0.0.2", trusted=True), raw, direction)
        message.attachment_texts  # noqa: B018 - compute the shared views first: the rules are timed alone
        message.archive_members  # noqa: B018
        found.append(message)
    return found


def cpu_ms(run, items: list[Message]) -> float:  # type: ignore[no-untyped-def]
    started = time.process_time()
    for item in items:
        run(item)
    return (time.process_time() - started) * 1000 / len(items)


def measure(size: int, count: int) -> dict[str, dict[str, float]]:
    config = load_config(ROOT / "config" / "aup-milter.toml")
    directory = load_directory(config.directory_path)
    raws = [make_message(size, number) for number in range(count)]
    results: dict[str, dict[str, float]] = {}
    for direction in DIRECTIONS:
        row: dict[str, float] = {}
        for policy_class in POLICIES:
            policy = policy_class(config.policies[policy_class.name], directory, Services())
            if policy.settings.mode == "off" or direction not in policy.settings.directions:
                continue
            policy.check(messages(raws[:1], direction)[0])  # warm caches and compiled patterns
            row[policy.name] = round(cpu_ms(policy.check, messages(raws, direction)), 3)
        row["views"] = round(cpu_ms(lambda m: (m.attachment_texts, m.archive_members),
                                    [Message(Envelope("a@example.gov", ("b@example.gov",)), raw, direction) for raw in raws]), 3)
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
