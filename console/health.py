"""What /healthz and /metrics read at each request: the scanner, the rules' real status, hold queues, index lag."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from archive import index
from milter.kernel.db import Database, utcnow
from policies.rules.virus import ScannerHealth
from quarantine import holds


class ScannerCollector(Collector):
    """Each rule's status and clamd's health, as measured for this scrape."""

    def __init__(self, scanner: ScannerHealth, policies: Mapping[str, Any]) -> None:
        self.scanner = scanner
        self.policies = policies

    def collect(self) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "aup_rule_status",
            'Each rule\'s status, 1 per rule ("off, no scanner": the virus rule is on but scans nothing)',
            labels=["policy", "status"],
        )
        for name, settings in self.policies.items():
            status.add_metric([name, settings.status], 1)
        yield status
        yield GaugeMetricFamily(
            "aup_scanner_configured", "1 when the virus rule has a clamd socket", value=int(self.scanner.configured)
        )
        yield GaugeMetricFamily(
            "aup_scanner_up", "1 when clamd answered VERSION at this scrape", value=int(self.scanner.reachable)
        )
        age = self.scanner.signature_age(utcnow())
        if age is not None:  # absent when clamd loaded no official (dated) database
            yield GaugeMetricFamily(
                "aup_scanner_signature_age_seconds", "Age of clamd's daily signature database", value=age
            )


class BacklogCollector(Collector):
    """Work waiting for people (held messages per queue) and for the indexer (archive records not yet searchable)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.database.read() as connection:
            depth = holds.pending_depth(connection)
            behind = index.behind(connection)
        held = GaugeMetricFamily("aup_held_messages", "Held messages waiting for a decision", labels=["queue"])
        oldest = GaugeMetricFamily(
            "aup_held_oldest_seconds", "Age of the oldest held message waiting for a decision", labels=["queue"]
        )
        for queue_name, (count, since) in sorted(depth.items()):
            held.add_metric([queue_name], count)
            oldest.add_metric([queue_name], (now - since).total_seconds() if since else 0.0)
        yield held
        yield oldest
        yield GaugeMetricFamily(
            "aup_index_behind_records", "Archive records the search index has not reached yet", value=behind
        )
