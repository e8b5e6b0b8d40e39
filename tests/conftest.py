"""Shared fixtures: configs, a real downstream sink, the gateway in-process, PostgreSQL."""

from __future__ import annotations

import asyncio
import atexit
import functools
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiosmtpd.controller import Controller

from milter.config import Config, load_config
from tests.support.auth_dns import DnsServer
from tests.support.servers import PostgresServer, free_port

# Fixtures for the real servers and the browser, shared by every test module.
pytest_plugins = [
    "tests.support.fixtures_postfix",
    "tests.support.browser",
    "tests.support.tls",
    "tests.support.fixtures_clamd",
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIRECTORY = ROOT / "config" / "directory.toml"
TRUSTED = "127.0.0.2"  # the "agency mail server" in tests; other loopback addresses are outside clients


# -- config ---------------------------------------------------------------


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


@functools.cache
def local_dns() -> DnsServer:
    """A DNS server on loopback with no records: every lookup a test gateway makes gets a fast,
    real "no such domain" instead of leaving the machine. Tests that need records start their own."""
    server = DnsServer({}).start()
    atexit.register(server.stop)
    return server


def write_config(folder: Path, database_url: str, deliver_url: str, extra: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE_DIRECTORY, folder / "directory.toml")
    settings: dict[str, Any] = {
        "smtp": {"listen": "127.0.0.1:0", "hostname": "gateway.test", "trusted_networks": [f"{TRUSTED}/32"]},
        "console": {
            "enabled": False,
            "secret_key_file": str(folder / "console-secret"),
            "secure_cookie": False,  # the tests' clients talk plain http to loopback
        },
        "storage": {"database": database_url, "blobs": str(folder / "blobs")},
        "deliver": {
            "url": deliver_url,
            "min_backoff": "0.2s",
            "max_backoff": "1s",
            "poll_interval": "0.1s",
            "timeout": "10s",
        },
        "directory": {"path": "directory.toml"},
        "dns": {"nameservers": [local_dns().address], "timeout": "2s"},
        "archive": {"indexer": False},  # tests index when they need to; one test covers the background indexer
    }
    path = folder / "aup-milter.toml"
    path.write_text(tomli_w.dumps(deep_merge(settings, extra or {})))
    return path


# -- databases ------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: that is private to root, and PostgreSQL runs as its own user.
    folder = Path(tempfile.mkdtemp(prefix="aup-pg-"))
    server = PostgresServer(folder).start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aup.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{secrets.token_hex(6)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'aup.db'}"


# -- the downstream -------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SinkHandler:
    """A downstream MTA stand-in: records what it accepts; refuses on request."""

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> reply at RCPT, e.g. "550 5.1.1 no such user"
    data_reply: str | None = None  # a reply to DATA instead of 250
    sessions: int = 0  # SMTP sessions opened (EHLO or HELO), to see connection reuse

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 stored"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"the sink received {len(self.messages)} messages, expected {count}"
        return self.messages


class Sink:
    def __init__(self, port: int | None = None) -> None:
        self.handler = SinkHandler()
        self.port = port or free_port()
        self.controller: Controller | None = None

    def start(self) -> Sink:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        return self.handler.wait_for(count, timeout)


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = Sink().start()
    yield running
    running.stop()


# -- the gateway, in-process ----------------------------------------------


class RunningGateway:
    """The real Gateway on its own event loop in a thread, SMTP on a free port."""

    def __init__(self, config: Config) -> None:
        from milter.server import Gateway

        self.config = config
        self.gateway = Gateway(config, main=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        started = asyncio.Event()

        async def main() -> None:
            task = asyncio.create_task(self.gateway.run(signals=False, started=started))
            await started.wait()
            self._started.set()
            await task

        try:
            self.loop.run_until_complete(main())
        finally:
            self.loop.close()

    def start(self) -> RunningGateway:
        self.thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the gateway did not start")
        return self

    @property
    def port(self) -> int:
        assert self.gateway.smtp_address is not None
        return self.gateway.smtp_address[1]

    @property
    def runtime(self) -> Any:
        return self.gateway.runtime

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.gateway.stop.set)
        self.thread.join(30)


@pytest.fixture
def make_gateway(tmp_path: Path, database_url: str, sink: Sink) -> Iterator[Callable[..., RunningGateway]]:
    running: list[RunningGateway] = []

    def start(
        extra: dict[str, Any] | None = None, deliver_url: str | None = None, folder: Path | None = None
    ) -> RunningGateway:
        path = write_config(folder or tmp_path / f"gw{len(running)}", database_url, deliver_url or sink.url, extra)
        gateway = RunningGateway(load_config(path)).start()
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return make_gateway()


def message_bytes(
    sender: str = "sortiz@example.gov",
    to: str = "dwhitfield@example.gov",
    subject: str = "Hello",
    body: str = "Just a note.\r\n",
    extra_headers: str = "",
) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{secrets.token_hex(8)}@example.gov>\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n{extra_headers}\r\n{body}"
    ).encode()
