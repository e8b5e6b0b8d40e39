"""Prometheus metrics: one set per process, shared by every part of it.

With several SMTP worker processes the gateway sets PROMETHEUS_MULTIPROC_DIR
before this module is imported, and /metrics merges every process's values.
Queue depth and age are read from the database when /metrics is scraped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.messages = Counter("aup_messages", "Messages answered, by direction and decision", ["direction", "action"])
        self.findings = Counter(
            "aup_findings", "Rule findings, by rule, mode and action asked", ["policy", "mode", "action"]
        )
        self.reply_seconds = Histogram(
            "aup_reply_seconds", "Time from the end of DATA to the SMTP reply", buckets=REPLY_BUCKETS
        )
        self.rule_seconds = Histogram(
            "aup_rule_seconds", "Time one rule took on one message", ["policy"], buckets=REPLY_BUCKETS
        )
        self.rule_errors = Counter("aup_rule_errors", "Rules that raised or ran out of time", ["policy"])
        self.refusals = Counter(
            "aup_smtp_refusals", "SMTP commands refused before DATA, by stage and code", ["stage", "code"]
        )
        self.delivery_attempts = Counter(
            "aup_delivery_attempts", "Delivery attempts per recipient, by result", ["result"]
        )
        self.stored_bytes = Counter("aup_stored_bytes", "Bytes of messages written to the archive")

    def observe_rule(self, policy: str, seconds: float, error: Exception | None) -> None:
        self.rule_seconds.labels(policy=policy).observe(seconds)
        if error is not None:
            self.rule_errors.labels(policy=policy).inc()


@cache
def get() -> Metrics:
    return Metrics()


class QueueCollector(Collector):
    """Queue depth and the age of the oldest waiting recipient, read at scrape time."""

    def __init__(self, depth: Callable[[], tuple[int, datetime | None]]) -> None:
        self.depth = depth

    def collect(self) -> Iterator[Metric]:
        count, oldest = self.depth()
        yield GaugeMetricFamily("aup_queue_depth", "Recipients waiting in the deliver queue", value=count)
        age = time.time() - oldest.timestamp() if oldest else 0.0
        yield GaugeMetricFamily(
            "aup_queue_oldest_seconds", "Age of the oldest message waiting in the deliver queue", value=age
        )


def exposition(extra: list[Collector]) -> bytes:
    """The /metrics body: this process (or every process) plus the extra collectors."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    extra_registry = CollectorRegistry()
    for collector in extra:
        extra_registry.register(collector)
    return body + generate_latest(extra_registry)
