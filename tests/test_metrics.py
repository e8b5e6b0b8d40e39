"""/metrics shows what a mail admin watches: traffic, findings, reply time, the queue, deliveries, storage."""

from __future__ import annotations

import smtplib

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from console.app import create_app
from tests.conftest import TRUSTED, message_bytes


def scrape(runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    client = TestClient(create_app(runtime), client=("127.0.0.1", 50000))
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_messages_findings_replies_deliveries_and_bytes(gateway, sink):
    before = scrape(gateway.runtime)
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes())
        client.sendmail(
            "anonymous@example.gov", ["dwhitfield@example.gov"], message_bytes(sender="anonymous@example.gov")
        )
    sink.wait_for(1)
    gateway.call(gateway.gateway.runner.drain())
    after = scrape(gateway.runtime)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("aup_messages_total", direction="internal", action="deliver") == 1
    assert delta("aup_messages_total", direction="internal", action="hold") == 1
    assert delta("aup_findings_total", policy="anonymous_sender", mode="enforce", action="hold") == 1
    assert delta("aup_reply_seconds_count") == 2
    assert delta("aup_delivery_attempts_total", result="delivered") == 1
    assert delta("aup_stored_bytes_total") > 0
    assert delta("aup_rule_seconds_count", policy="size") == 2
    assert ("aup_queue_depth", ()) in after and ("aup_queue_oldest_seconds", ()) in after


def test_queue_depth_and_age_follow_the_queue(make_gateway, sink):
    sink.stop()  # downstream down: the message waits
    gateway = make_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov", "lpark@example.gov"], message_bytes())
    gateway.call(gateway.gateway.runner.drain(timeout=5))
    samples = scrape(gateway.runtime)
    assert value(samples, "aup_queue_depth") == 2
    assert value(samples, "aup_queue_oldest_seconds") > 0
    assert value(samples, "aup_delivery_attempts_total", result="deferred") >= 2


def test_metrics_are_refused_outside_the_allowed_networks(gateway):
    client = TestClient(create_app(gateway.runtime), client=("192.0.2.10", 50000))
    assert client.get("/metrics").status_code == 403


def test_held_queues_and_index_lag_are_measured(gateway, sink):
    from archive import index

    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes())
        client.sendmail(
            "anonymous@example.gov", ["dwhitfield@example.gov"], message_bytes(sender="anonymous@example.gov")
        )
    samples = scrape(gateway.runtime)
    assert value(samples, "aup_held_messages", queue="quarantine") == 1
    assert value(samples, "aup_held_messages", queue="approval") == 0
    assert value(samples, "aup_held_oldest_seconds", queue="quarantine") > 0
    assert ("aup_held_oldest_seconds", (("queue", "approval"),)) in samples
    assert value(samples, "aup_index_behind_records") >= 2  # the tests' config runs no background indexer
    index.index_job(gateway.runtime)
    assert value(scrape(gateway.runtime), "aup_index_behind_records") == 0
