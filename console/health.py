"""What /healthz and /metrics say about the scanner and the rules' real status."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from milter.kernel.db import utcnow
from policies.rules.virus import ScannerHealth


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
