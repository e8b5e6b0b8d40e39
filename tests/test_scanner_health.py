"""The virus rule is honest about scanning: no socket reads "off, no scanner", and clamd's health is in /healthz and /metrics."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from console.app import create_app
from milter import cli
from milter.config import load_config
from milter.runtime import Runtime
from policies.rules.virus import signatures_built
from tests.conftest import write_config

SQLITE = "sqlite:///{}"


def gateway(folder: Path, virus: dict[str, Any]) -> Runtime:
    path = write_config(
        folder, SQLITE.format(folder / "aup.db"), f"maildir:{folder / 'outbox'}", {"policies": {"virus": virus}}
    )
    runtime = Runtime(load_config(path))
    runtime.database.create_schema()
    return runtime


def scrape(runtime: Runtime) -> dict[str, list[tuple[dict[str, str], float]]]:
    body = TestClient(create_app(runtime), client=("127.0.0.1", 50000)).get("/metrics").text
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(body)}


def test_no_socket_is_reported_as_off_no_scanner_everywhere(tmp_path, capsys):
    path = write_config(tmp_path, SQLITE.format(tmp_path / "aup.db"), "maildir:/tmp/unused")
    assert cli.main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert "virus=off, no scanner" in out and "virus=enforce" not in out
    assert "WARNING: [policies.virus]" in err and "NOT scanned" in err
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: sortiz@example.gov\r\nTo: dwhitfield@example.gov\r\nSubject: hi\r\n\r\nhello\r\n")
    cli.main(["--config", str(path), "check", "--json", str(message)])
    assert json.loads(capsys.readouterr().out)["rules"]["virus"] == "off, no scanner"

    runtime = gateway(tmp_path / "gw", {})
    try:
        metrics = scrape(runtime)
        assert ({"policy": "virus", "status": "off, no scanner"}, 1.0) in metrics["aup_rule_status"]
        assert metrics["aup_scanner_configured"] == [({}, 0.0)] and metrics["aup_scanner_up"] == [({}, 0.0)]
        health = TestClient(create_app(runtime)).get("/healthz")
        assert health.status_code == 200
        assert health.json()["scanner"] == {
            "configured": False,
            "reachable": False,
            "version": None,
            "signature_age_seconds": None,
            "error": None,
        }
    finally:
        runtime.close()


def test_mode_off_without_a_socket_is_plain_off_and_not_warned(tmp_path, capsys):
    path = write_config(
        tmp_path, SQLITE.format(tmp_path / "aup.db"), "maildir:/tmp/unused", {"policies": {"virus": {"mode": "off"}}}
    )
    assert cli.main(["--config", str(path), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert "virus=off;" in out and "no scanner" not in out and "WARNING" not in err


def test_a_reachable_clamd_is_healthy_and_up(tmp_path, clamd):
    runtime = gateway(tmp_path, {"socket": str(clamd.socket_path)})
    try:
        health = TestClient(create_app(runtime)).get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        scanner = health.json()["scanner"]
        assert scanner["configured"] and scanner["reachable"] and scanner["version"].startswith("ClamAV ")
        # The test clamd loads only our own .ndb: no dated official database, so no age is claimed.
        assert scanner["signature_age_seconds"] is None
        metrics = scrape(runtime)
        assert metrics["aup_scanner_up"] == [({}, 1.0)]
        assert ({"policy": "virus", "status": "enforce"}, 1.0) in metrics["aup_rule_status"]
        assert "aup_scanner_signature_age_seconds" not in metrics
    finally:
        runtime.close()


def test_an_unreachable_clamd_makes_healthz_503(tmp_path):
    dead = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))
    listener.close()  # the path exists, nothing listens: connection refused
    runtime = gateway(tmp_path / "gw", {"socket": str(dead), "timeout": "2s"})
    try:
        health = TestClient(create_app(runtime)).get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert "cannot be reached" in health.json()["scanner"]["error"]
        assert scrape(runtime)["aup_scanner_up"] == [({}, 0.0)]
    finally:
        runtime.close()


def test_signature_age_comes_from_the_daily_database_in_version():
    assert signatures_built("ClamAV 1.0.7/27480/Thu Dec  3 08:26:02 2026") == datetime(
        2026, 12, 3, 8, 26, 2, tzinfo=UTC
    )
    assert signatures_built("ClamAV 1.4.6") is None
    assert signatures_built("ClamAV 1.4.6/27480/garbage") is None
