"""SIGHUP reloads config and directory without dropping connections; a bad file changes nothing."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import ROOT, TRUSTED, message_bytes, write_config
from tests.support.servers import free_port, wait_for_port


@pytest.fixture
def served(tmp_path, sink, sqlite_url):
    port = free_port()
    path = write_config(tmp_path, sqlite_url, sink.url, {"smtp": {"listen": f"127.0.0.1:{port}"}})
    with open(tmp_path / "gateway.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "milter.cli", "--config", str(path), "serve"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(port)
        yield process, path, port, tmp_path / "gateway.log"
        process.terminate()
        process.wait(20)


def edit(path: Path, section: str, values: dict) -> None:
    import tomllib

    data = tomllib.loads(path.read_text())
    data.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(data))


def wait_for_log(log: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the gateway log:\n{log.read_text(errors='replace')[-2000:]}")


def test_sighup_applies_new_rules_and_keeps_open_sessions(served, sink):
    process, path, port, log = served
    client = smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0))
    client.ehlo()
    assert client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes()) == {}

    edit(path, "policies", {"size": {"max_bytes": {"internal": "1KiB"}}})
    os.kill(process.pid, signal.SIGHUP)
    wait_for_log(log, "configuration and directory reloaded")

    # The same connection is still open and the new limit applies to it.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(body=("x" * 70 + "\r\n") * 60))
    assert refused.value.smtp_code == 552
    client.quit()
    assert process.poll() is None


def test_sighup_with_a_broken_file_keeps_the_running_configuration(served, sink):
    process, path, port, log = served
    path.write_text(path.read_text() + "\n[smtp]\nworkers = 'many'\n")
    os.kill(process.pid, signal.SIGHUP)
    wait_for_log(log, "reload refused, still running on the previous configuration")
    assert process.poll() is None
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0)) as client:
        assert client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes()) == {}
    sink.wait_for(1)


def test_sighup_reloads_the_directory(served, sink):
    process, path, port, log = served
    directory = path.parent / "directory.toml"
    with smtplib.SMTP("127.0.0.1", port) as client:  # outside client: newcomer does not exist yet
        client.ehlo()
        client.mail("partner@outside.org")
        assert client.rcpt("newcomer@example.gov")[0] == 550
    directory.write_text(directory.read_text() + '\n[[people]]\naddress = "newcomer@example.gov"\nname = "New Comer"\n')
    os.kill(process.pid, signal.SIGHUP)
    wait_for_log(log, "configuration and directory reloaded")
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        client.mail("partner@outside.org")
        assert client.rcpt("newcomer@example.gov")[0] == 250
