"""The shipped Grafana dashboard and Prometheus alert rules query metrics the gateway really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from console.app import create_app
from milter.kernel import metrics
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
PROMETHEUS_OWN = {"up"}  # Prometheus's own series, not the gateway's
SERIES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported(runtime) -> set[str]:
    """What /metrics shows now, plus the series of labelled counters and histograms that show once counted."""
    body = TestClient(create_app(runtime), client=("127.0.0.1", 50000)).get("/metrics").text
    names = {sample.name for family in text_string_to_metric_families(body) for sample in family.samples}
    for metric in vars(metrics.get()).values():
        if isinstance(metric, MetricWrapperBase):
            [family] = metric.describe()
            names |= {family.name + suffix for suffix in SERIES[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    return {
        name
        for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", without_ranges)
        if name.startswith("aup_") or name in PROMETHEUS_OWN
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_queries() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("source", [dashboard_queries, rule_queries], ids=["grafana", "alerts"])
def test_every_queried_metric_is_exported(source, gateway):
    names = exported(gateway.runtime)
    # Gauges that appear only with a value to report: signature age needs a dated official clamd database.
    names |= {"aup_scanner_signature_age_seconds"}
    queries = source()
    assert queries
    missing = {name for expr in queries for name in metric_names(expr) if name not in names | PROMETHEUS_OWN}
    assert not missing, f"queried but not exported: {sorted(missing)}"


def test_the_name_check_can_fail():
    assert metric_names('sum(rate(aup_no_such_metric_total{a="b"}[5m])) / up') == {"aup_no_such_metric_total", "up"}


def test_promtool_accepts_the_alert_rules():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    completed = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "prometheus-rules.yml")], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_systemd_unit_runs_the_installed_command():
    unit = (DEPLOY / "aup-milter.service").read_text()
    assert "ExecStart=/opt/aup-milter/venv/bin/aup-milter serve" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze:  # not in every container; the checks above hold either way
        completed = subprocess.run(
            [systemd_analyze, "verify", str(DEPLOY / "aup-milter.service")], capture_output=True, text=True
        )
        assert "Unknown key" not in completed.stderr and "Invalid" not in completed.stderr, completed.stderr
