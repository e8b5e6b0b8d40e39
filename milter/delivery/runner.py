"""The delivery runner: takes due recipients from the queue and sends them on.

Per recipient: 2xx delivered; 5xx bounced with a DSN to the sender; 4xx or a
lost connection retried with backoff (minutes growing to about an hour, as
Postfix does) until `max_lifetime`, then bounced. A blob read failure or a
crash leaves the row queued: it is retried, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from milter.delivery import dsn, queue
from milter.delivery.transport import Transport, transport_for
from milter.intake import accept
from milter.kernel.db import utcnow

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)


def backoff(attempts: int, minimum: float, maximum: float) -> float:
    """Seconds before the next try: doubles from `minimum`, capped at `maximum`.

    With Postfix's defaults (300s, 4000s): 5, 10, 20, 40 minutes, then every
    66 minutes. The exponent is bounded so days of retries cannot overflow.
    """
    return max(minimum, min(maximum, minimum * 2.0 ** min(max(attempts - 1, 0), 64)))


class DeliveryRunner:
    def __init__(self, runtime: Runtime, owner: str | None = None) -> None:
        self.runtime = runtime
        self.owner = owner or f"{socket.gethostname()}:{runtime.config.path}"
        self.wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: dict[str, Transport] = {}

    def transport(self, rcpt: str) -> Transport:
        settings = self.runtime.config.settings.deliver
        url = settings.url if self.runtime.directory.is_local(rcpt) else (settings.relay_url or settings.url)
        if url not in self._transports:
            self._transports[url] = transport_for(url, settings, self.runtime.config.settings.smtp.hostname)
        return self._transports[url]

    def reconfigure(self) -> None:
        old, self._transports = self._transports, {}
        for transport in old.values():
            asyncio.get_running_loop().create_task(transport.close())

    async def run(self, stop: asyncio.Event) -> None:
        released = await self.runtime.committer.run(lambda connection: queue.release_leases(connection, self.owner))
        if released:
            log.info("took back %d recipients leased before the last stop", released)
        while not stop.is_set():
            self.wake.clear()  # before the pass: a wake-up during it is not lost
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not stop deliveries for good
                log.exception("delivery runner pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.runtime.config.settings.deliver.poll_interval)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for transport in self._transports.values():
            await transport.close()

    async def run_once(self) -> int:
        """Claim what is due and start sending it; returns how many deliveries started."""
        settings = self.runtime.config.settings.deliver
        free = settings.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        lease = settings.timeout * 3 + 60
        # Everything claimed starts now: work leased but left idle would wait out its lease.
        works = await self.runtime.committer.run(
            lambda connection: queue.claim_due(connection, self.owner, lease, free)
        )
        for work in works:
            task = asyncio.create_task(self.deliver(work))
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        return len(works)

    def _finished(self, task: asyncio.Task[None]) -> None:
        was_full = len(self._tasks) >= self.runtime.config.settings.deliver.concurrency
        self._tasks.discard(task)
        if was_full:
            self.wake.set()  # a slot is free: look for more due work now

    async def drain(self, timeout: float = 30.0) -> None:
        """Deliver everything due now (tests and `queue flush`)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            started = await self.run_once()
            if self._tasks:
                await asyncio.wait(self._tasks)
            elif not started:
                return

    async def deliver(self, work: queue.Work) -> None:
        replies, data = await self._attempt(work)
        for reply in replies.values():
            self.runtime.metrics.delivery_attempts.labels(
                result={"2": "delivered", "5": "bounced"}.get(reply[:1], "deferred")
            ).inc()
        try:
            await self.record(work, replies, data)
        except Exception:
            # The lease will lapse and these recipients will be tried again: a
            # duplicate is possible, a loss is not.
            log.exception("delivery %s: could not record the outcome", work.delivery_id)

    async def _attempt(self, work: queue.Work) -> tuple[dict[str, str], bytes]:
        """Send once; a reply for every recipient, and the bytes sent."""
        try:
            body = await asyncio.get_running_loop().run_in_executor(
                self.runtime.io_pool, self.runtime.blobs.get, work.blob_sha256
            )
        except Exception as exc:
            log.error("delivery %s: cannot read blob %s: %s; will retry", work.delivery_id, work.blob_sha256, exc)
            return {r.rcpt: f"451 4.3.0 message store unreadable: {exc}" for r in work.recipients}, b""
        data = work.prepend + body
        groups: dict[Transport, list[str]] = {}
        for recipient in work.recipients:
            groups.setdefault(self.transport(recipient.rcpt), []).append(recipient.rcpt)
        replies: dict[str, str] = {}
        for transport, rcpts in groups.items():
            try:
                replies.update(await transport.send(work.mail_from, rcpts, data))
            except Exception as exc:  # a transport bug defers these recipients; it must not strand them
                log.exception("delivery %s via %s failed", work.delivery_id, transport)
                replies.update(
                    {r: f"451 4.3.0 delivery failed inside the gateway: {type(exc).__name__}" for r in rcpts}
                )
        return replies, data

    async def record(self, work: queue.Work, replies: dict[str, str], data: bytes) -> None:
        """Write each recipient's outcome, and a DSN for those that failed for good, in one transaction."""
        settings = self.runtime.config.settings.deliver
        now = utcnow()
        expired = now - work.created_at >= timedelta(seconds=settings.max_lifetime)
        outcomes: list[tuple[queue.Recipient, str, str]] = []  # (recipient, state, reply)
        failures: list[dsn.Failure] = []
        for recipient in work.recipients:
            reply = replies.get(recipient.rcpt, "451 4.3.0 no reply from the transport")
            if reply.startswith("2"):
                outcomes.append((recipient, queue.DELIVERED, reply))
            elif reply.startswith("5") or expired:
                status = dsn.status_of(reply) if reply.startswith("5") else "4.4.7"
                outcomes.append((recipient, queue.BOUNCED, reply))
                failures.append(dsn.Failure(recipient.rcpt, reply, status))
            else:
                outcomes.append((recipient, queue.QUEUED, reply))
        notice = await asyncio.to_thread(self._dsn, work, failures, data, expired) if failures else None

        def write(connection: Connection) -> None:
            for recipient, state, reply in outcomes:
                attempts = recipient.attempts + 1
                retry_at = None
                if state == queue.QUEUED:
                    retry_at = now + timedelta(seconds=backoff(attempts, settings.min_backoff, settings.max_backoff))
                queue.mark(connection, recipient.id, state, reply, attempts=attempts, next_attempt_at=retry_at)
            if notice is not None:
                message, digest = notice
                accept.record_generated(connection, message, digest, "dsn")

        await self.runtime.committer.run(write)
        if failures:
            log.warning(
                "delivery %s (%s): bounced %s",
                work.delivery_id,
                work.message_id,
                ", ".join(f"{f.rcpt} ({f.reply})" for f in failures),
            )
            self.wake.set()

    def _dsn(self, work: queue.Work, failures: list[dsn.Failure], data: bytes, expired: bool):  # type: ignore[no-untyped-def]
        if not work.mail_from or work.origin == "dsn":
            return None  # never bounce a bounce (RFC 5321 section 6.1)
        end = data.find(b"\r\n\r\n")
        headers = data[: end + 2] if end >= 0 else data[:8192]
        hostname = self.runtime.config.settings.smtp.hostname
        report = dsn.build(
            hostname=hostname,
            sender=work.mail_from,
            failures=failures,
            original_headers=headers,
            original_id=work.message_id,
            arrived=work.created_at,
            expired=expired,
        )
        message = accept.generated_message(self.runtime, report, "", [work.mail_from])
        return message, self.runtime.blobs.put(report)
