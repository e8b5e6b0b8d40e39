"""`aup-milter serve`: the SMTP listener(s), the delivery runner and the console.

The main process owns the schema, the deliver queue and the console; with
`[smtp] workers` above 1 it also starts that many minus one extra SMTP-only
processes that share the listening port (SO_REUSEPORT), like Postfix's
smtpd processes under its master. SIGHUP reloads config and directory in
every process without dropping connections; SIGTERM stops gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archive import checkpoint as archive_checkpoint
from milter.kernel.settings import ConfigError
from policies.rules.virus import no_scanner_warning
from quarantine import approvals, it_quarantine

if TYPE_CHECKING:
    from milter.config import Config
    from milter.runtime import Runtime

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def die_with_parent() -> None:
    """A worker must not outlive the main process (it would hold the port)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class Job:
    """Periodic work in the main process: `run(runtime)` every `every` seconds (sync runs in a thread)."""

    name: str
    every: float
    run: Callable[[Runtime], Awaitable[object] | object]  # what it returns (a count, say) is ignored


# Background processes the main process keeps running (and restarts), each an `aup-milter`
# command line: heavy work that must not take the SMTP processes' time.
CHILDREN: tuple[tuple[str, ...], ...] = (
    ("archive", "index", "--follow", "--quiet"),  # keep the search index up to the archive's head, at lower priority
)


def checkpoint_wal(runtime: Runtime) -> None:
    runtime.database.checkpoint()


# The periodic jobs of the main process, listed explicitly (subsystems add theirs here).
JOBS: tuple[Job, ...] = (
    Job("sqlite-checkpoint", 2.0, checkpoint_wal),  # keep the write-ahead log short, off the commit path
    Job("quarantine-notices", 5.0, it_quarantine.notify_new),  # tell each quarantined recipient their copy waits for IT
    Job("approvals", 300.0, approvals.run_clock),  # remind approvers, escalate to the fallback, expire (business days)
    Job("archive-checkpoint", 3600.0, archive_checkpoint.daily_job),  # the chain head into the audit log, once a day
)


class Gateway:
    def __init__(self, config: Config, *, main: bool = True) -> None:
        from milter.delivery.runner import DeliveryRunner
        from milter.intake.relay import RelayHandler
        from milter.runtime import Runtime

        self.main = main
        self.runtime = Runtime(config, background_checkpoints=True)  # the main process's job checkpoints for all
        if main:
            self.runtime.database.create_schema()
        self.runner = DeliveryRunner(self.runtime) if main else None
        self.handler = RelayHandler(self.runtime, on_accepted=self.runner.wake.set if self.runner else None)
        self.stop = asyncio.Event()
        self.workers: list[subprocess.Popen[bytes]] = []  # extra SMTP processes and background children
        self.commands: list[tuple[str, ...]] = []
        self.smtp_server: asyncio.AbstractServer | None = None
        self.smtp_address: tuple[str, int] | None = None
        self.milter_server: asyncio.AbstractServer | None = None
        self.milter_address: str | None = None  # as an MTA writes it: "inet:127.0.0.1:11332"
        self.console_server: object | None = None
        self.console_task: asyncio.Task[None] | None = None

    async def start_smtp(self) -> tuple[str, int]:
        from milter.intake.relay import protocol_factory

        host, port = self.runtime.config.settings.smtp.address
        sock = listening_socket(host, port)
        loop = asyncio.get_running_loop()
        self.smtp_server = await loop.create_server(protocol_factory(self.handler), sock=sock)
        bound = sock.getsockname()
        log.info("SMTP listening on %s:%d (%s)", bound[0], bound[1], "main" if self.main else f"worker {os.getpid()}")
        warning = no_scanner_warning(self.runtime.config.policies["virus"])
        if warning and self.main:
            log.warning("%s", warning)
        return bound[0], bound[1]

    async def start_milter(self) -> None:
        from milter.intake import milter_listener

        if not self.runtime.config.settings.milter.enabled:
            return
        on_accepted = self.runner.wake.set if self.runner else None
        self.milter_server, self.milter_address = await milter_listener.start(self.runtime, on_accepted)
        log.info("milter listening on %s", self.milter_address)

    async def start_console(self) -> None:
        settings = self.runtime.config.settings.console
        if not settings.enabled:
            return
        import uvicorn

        from console.app import create_app

        class Server(uvicorn.Server):
            def capture_signals(self):  # type: ignore[no-untyped-def]  # the gateway handles signals itself
                import contextlib

                return contextlib.nullcontext()

        host, port = settings.address
        config = uvicorn.Config(
            create_app(self.runtime),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
            server_header=False,
        )
        server = Server(config)
        self.console_server = server
        self.console_task = asyncio.create_task(server.serve())
        log.info("console listening on http://%s:%d", host, port)

    def start_workers(self) -> None:
        """The extra SMTP processes and the background children, each remembered by its command."""
        commands: list[tuple[str, ...]] = [("smtp-worker",)] * (self.runtime.config.settings.smtp.workers - 1)
        if self.runtime.config.settings.archive.indexer:
            commands += list(CHILDREN)
        self.workers = [self._spawn(command) for command in commands]
        self.commands = commands

    def _spawn(self, command: tuple[str, ...]) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "milter.cli", "--config", str(self.runtime.config.path), *command]
        return subprocess.Popen(argv, preexec_fn=die_with_parent)  # prctl must run in the child

    async def watch_workers(self) -> None:
        while not self.stop.is_set():
            for index, worker in enumerate(self.workers):
                if worker.poll() is not None:
                    # 0: it stopped to pick up a reload (SIGHUP); anything else is a failure
                    log.log(
                        logging.INFO if worker.returncode == 0 else logging.ERROR,
                        "%s (pid %d) exited with %s; starting another",
                        " ".join(self.commands[index]),
                        worker.pid,
                        worker.returncode,
                    )
                    self.workers[index] = self._spawn(self.commands[index])
            with contextlib.suppress(TimeoutError):  # a stop must not wait out the second
                await asyncio.wait_for(self.stop.wait(), 1)

    async def repeat(self, job: Job) -> None:
        """Run a job every `job.every` seconds until the gateway stops; a failure is logged, not fatal."""
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), job.every)
            if self.stop.is_set():
                return
            try:
                if inspect.iscoroutinefunction(job.run):
                    await job.run(self.runtime)
                else:
                    await asyncio.to_thread(job.run, self.runtime)
            except Exception:
                log.exception("periodic job %s failed; it runs again in %gs", job.name, job.every)

    def reload(self) -> None:
        try:
            warnings = self.runtime.reload()
        except ConfigError as exc:
            log.error("reload refused, still running on the previous configuration: %s", "; ".join(map(str, exc.every)))
            return
        self.handler.reconfigure()
        if self.runner:
            self.runner.reconfigure()
        for warning in warnings:
            log.warning("%s", warning)
        for worker in self.workers:
            worker.send_signal(signal.SIGHUP)
        log.info("configuration and directory reloaded from %s", self.runtime.config.path)

    async def run(self, *, signals: bool = True, started: asyncio.Event | None = None) -> None:
        loop = asyncio.get_running_loop()
        if signals:
            loop.add_signal_handler(signal.SIGTERM, self.stop.set)
            loop.add_signal_handler(signal.SIGINT, self.stop.set)
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.smtp_address = await self.start_smtp()
        tasks = []
        if self.main:
            assert self.runner is not None
            tasks.append(asyncio.create_task(self.runner.run(self.stop)))
            await self.start_milter()
            await self.start_console()
            self.start_workers()
            tasks.append(asyncio.create_task(self.watch_workers()))
            tasks += [asyncio.create_task(self.repeat(job)) for job in JOBS]
        if started is not None:
            started.set()
        await self.stop.wait()
        log.info("stopping")
        if self.smtp_server:
            self.smtp_server.close()
        if self.milter_server:
            self.milter_server.close()
        for worker in self.workers:
            worker.terminate()
        if self.console_server is not None:
            self.console_server.should_exit = True  # type: ignore[attr-defined]
            tasks.append(self.console_task)  # type: ignore[arg-type]
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in self.workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
        self.runtime.close()


def prepare_metrics_dir(config: Config) -> None:
    """Several processes share metrics through files; must run before prometheus_client is imported."""
    if config.settings.smtp.workers <= 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = Path(config.settings.storage.blobs).parent / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def serve(config: Config, *, main: bool = True) -> None:
    if main:
        prepare_metrics_dir(config)
    else:
        die_with_parent()
    asyncio.run(Gateway(config, main=main).run())
