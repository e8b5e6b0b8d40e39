"""kill -9 under load: every message that got 250 is delivered, however often the gateway dies.

The gateway runs as a real `aup-milter serve` process (in its own process
group, so SMTP workers die with it); a downstream sink and several SMTP
clients run in the test process. The clients send uniquely numbered
messages without pause; the gateway is killed at random moments and started
again, many times. At the end the queue drains and every (message,
recipient) that was acknowledged with 250 must have reached the sink.
Duplicates are allowed (the promise is "never lost", not "exactly once").
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from milter.delivery import queue
from milter.kernel.db import Database
from tests.conftest import TRUSTED, Sink, write_config
from tests.support.servers import free_port, wait_for_port, wait_until

pytestmark = pytest.mark.slow

AUP_MILTER = Path(sys.executable).with_name("aup-milter")
RECIPIENTS = (["dwhitfield@example.gov"], ["lpark@example.gov", "cnguyen@example.gov"])
SEQ = re.compile(rb"^X-Seq: (\d+)\r?$", re.MULTILINE)


class GatewayProcess:
    """`aup-milter serve` in its own process group, so one signal reaches it and its workers."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        if not AUP_MILTER.exists():
            raise RuntimeError(f"{AUP_MILTER} is missing: pip install -e '.[test]' into the virtualenv")
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(AUP_MILTER), "--config", str(self.config), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.process.returncode}:\n{self.tail()}")
            try:
                wait_for_port(self.port, timeout=0.2)
                return
            except TimeoutError:
                pass
        raise RuntimeError(f"the gateway did not listen within 60s:\n{self.tail()}")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM (a graceful stop); SIGKILL if it takes too long. Safe to call when already stopped."""
        if self.process is None or self.process.poll() is not None:
            self._kill_stragglers()
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._kill_stragglers()

    def _kill_stragglers(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # workers still shutting down

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Load:
    """SMTP clients sending numbered messages until told to stop; remembers what got 250."""

    port: int
    acked: set[tuple[int, str]] = field(default_factory=set)  # (number, recipient)
    failures: int = 0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        for _ in range(clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "an SMTP client thread did not stop"

    def _number(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _client(self) -> None:
        while not self._stop.is_set():
            number = self._number()
            rcpts = RECIPIENTS[number % 5 == 0]
            data = (
                f"From: sortiz@example.gov\r\nTo: {', '.join(rcpts)}\r\nSubject: Load {number}\r\n"
                f"Message-ID: <load-{number}@example.gov>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                f"X-Seq: {number}\r\n\r\nMessage number {number}.\r\n"
            ).encode()
            try:
                with smtplib.SMTP("127.0.0.1", self.port, source_address=(TRUSTED, 0), timeout=15) as client:
                    refused = client.sendmail("sortiz@example.gov", rcpts, data)
                with self._lock:  # 250 after DATA: the gateway now owns these recipients
                    self.acked.update((number, rcpt) for rcpt in rcpts if rcpt not in refused)
            except (smtplib.SMTPException, OSError):
                with self._lock:
                    self.failures += 1
                time.sleep(0.02)  # the gateway is down or restarting


def delivered_pairs(sink: Sink) -> collections.Counter[tuple[int, str]]:
    pairs: collections.Counter[tuple[int, str]] = collections.Counter()
    for message in list(sink.messages):
        found = SEQ.search(message.data)
        assert found, f"a delivered message without X-Seq: {message.data[:300]!r}"
        pairs.update((int(found.group(1)), rcpt) for rcpt in message.rcpt_tos)
    return pairs


def run_kill_test(
    folder: Path, database_url: str, *, kills: int, workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = Sink().start()
    port = free_port()
    config = write_config(folder, database_url, sink.url, {"smtp": {"listen": f"127.0.0.1:{port}", "workers": workers}})
    gateway = GatewayProcess(config, port, folder / "gateway.log")
    seed = int(os.environ.get("AUP_CRASH_SEED") or random.randrange(1_000_000))  # set it to replay a failure
    rng = random.Random(seed)
    load = Load(port)
    started = time.monotonic()
    try:
        gateway.start()
        load.start(clients=4)
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 1.5))  # a random moment: mid-DATA, mid-commit, mid-delivery ...
            gateway.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            gateway.start()
        time.sleep(1.0)
        load.stop()
        with load._lock:
            acked = set(load.acked)
        assert len(acked) > 50 * kills / 15, f"too little load got through to prove anything: {len(acked)} acknowledged"

        def all_arrived() -> bool:
            return acked <= set(delivered_pairs(sink))

        try:
            wait_until(all_arrived, timeout=60, what="every acknowledged message to reach the sink")
        except AssertionError:
            missing = sorted(acked - set(delivered_pairs(sink)))
            raise AssertionError(
                f"LOST {len(missing)} acknowledged recipients (seed {seed}), e.g. {missing[:10]}\n"
                f"gateway log:\n{gateway.tail()}"
            ) from None
        database = Database(database_url)
        try:
            wait_until(lambda: _queue_empty(database), timeout=30, what="the deliver queue to drain")
        finally:
            database.dispose()
        verify = subprocess.run(
            [str(AUP_MILTER), "--config", str(config), "archive", "verify"], capture_output=True, text=True, timeout=120
        )
        assert verify.returncode == 0, f"the archive chain broke under kill -9: {verify.stdout}{verify.stderr}"
        delivered = delivered_pairs(sink)
        duplicates = sum(count - 1 for count in delivered.values() if count > 1)
        with capsys.disabled():
            print(
                f"\n[crash recovery: {database_url.split(':')[0]}, workers={workers}, seed {seed}] "
                f"{kills} kill -9 in {time.monotonic() - started:.0f}s; {len(acked)} recipients got 250, "
                f"{sum(delivered.values())} deliveries, {len(acked & set(delivered))} of the 250s delivered, "
                f"{duplicates} duplicates, 0 lost; {load.failures} client attempts refused or cut off"
            )
    finally:
        load.stop()
        gateway.stop()
        sink.stop()


def _queue_empty(database: Database) -> bool:
    with database.read() as connection:
        waiting, _ = queue.depth(connection)
    return waiting == 0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_acknowledged_message_is_lost_across_15_kills_on_sqlite(tmp_path, database_url, capsys):
    run_kill_test(tmp_path / "gw", database_url, kills=15, workers=1, capsys=capsys)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_acknowledged_message_is_lost_across_kills_with_two_smtp_workers(tmp_path, database_url, capsys):
    run_kill_test(tmp_path / "gw", database_url, kills=8, workers=2, capsys=capsys)


@pytest.mark.postgres
@pytest.mark.timeout(240)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_no_acknowledged_message_is_lost_across_kills_on_postgresql(tmp_path, database_url, capsys):
    run_kill_test(tmp_path / "gw", database_url, kills=6, workers=1, capsys=capsys)
