"""Viruses: every attachment and archive member is scanned by the ClamAV daemon; a detection rejects.

Speaks clamd's INSTREAM command (clamd(8)) over its Unix or TCP socket with
asyncio: "zINSTREAM\\0", then chunks each prefixed by its length as a 4-byte
big-endian number, then a zero length; clamd answers "stream: OK",
"stream: NAME FOUND" or "... ERROR", ending in NUL. The protocol is this
small, so it is written here rather than taken from the `clamd` package,
which has been unmaintained since 2014 and blocks (no asyncio, no timeouts
per scan).

A scanner that cannot be reached, answers an error or runs past its timeout
raises, and the pipeline tempfails the message (451): never accepted
unscanned. A file larger than clamd will take is held for IT. The scan runs
only when `[policies.virus] socket` is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from milter.kernel.units import Duration, Size
from milter.mail.message import Message
from policies.base import Finding, Policy, PolicySettings
from policies.rules.software import File, files_of, format_size

CHUNK = 64 * 1024
MAX_REPLY = 4096


class ScannerError(Exception):
    """clamd could not give a verdict; the message is tempfailed."""


@dataclass(frozen=True)
class Verdict:
    infected: bool
    signature: str | None = None


class VirusSettings(PolicySettings):
    action: Literal["tag", "hold", "reject"] = Field(
        "reject", json_schema_extra={"fix": '"reject" (or "hold" to quarantine infected mail for IT)'}
    )
    socket: str | None = Field(
        None,
        json_schema_extra={
            "fix": (
                'the clamd socket: a Unix socket path such as "/run/clamav/clamd.ctl", or "tcp://HOST:PORT"; leave out to scan nothing'
            )
        },
    )
    timeout: Duration = Field(
        30.0,
        gt=0,
        json_schema_extra={"fix": 'how long one scan may take before the message is tempfailed, such as "30s"'},
    )
    max_stream: Size = Field(
        25 * 1024 * 1024,
        ge=1024,
        json_schema_extra={
            "fix": (
                'the most bytes sent to clamd for one file, at most clamd\'s StreamMaxLength, such as "25MiB"; larger files are held for IT'
            )
        },
    )
    concurrency: int = Field(
        4, ge=1, le=64, json_schema_extra={"fix": "how many files of one message are scanned at once, 1 to 64"}
    )

    @field_validator("socket")
    @classmethod
    def _check_socket(cls, value: str | None) -> str | None:
        if value is None or value.startswith("/"):
            return value
        host, sep, port = value.removeprefix("tcp://").rstrip("/").rpartition(":")
        if not value.startswith("tcp://") or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is neither an absolute Unix socket path nor tcp://HOST:PORT")
        return value

    @property
    def status(self) -> str:
        # With no socket the rule scans nothing: never report that as "enforce".
        return "off, no scanner" if self.socket is None and self.mode != "off" else self.mode

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        if self.socket is None or not self.socket.startswith("tcp://"):
            return None
        host, _, port = self.socket.removeprefix("tcp://").rstrip("/").rpartition(":")
        return host.strip("[]"), int(port)


class Clamd:
    """One clamd, by Unix socket path or tcp://host:port."""

    def __init__(self, settings: VirusSettings) -> None:
        if settings.socket is None:
            raise ValueError("no clamd socket is configured")
        self.settings = settings

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self.settings.tcp_address
        if address is not None:
            return await asyncio.open_connection(*address)
        assert self.settings.socket is not None
        return await asyncio.open_unix_connection(self.settings.socket)

    async def instream(self, data: bytes) -> Verdict:
        try:
            return await asyncio.wait_for(self._instream(data), self.settings.timeout)
        except TimeoutError:
            raise ScannerError(
                f"clamd at {self.settings.socket} did not answer within {self.settings.timeout:g}s"
            ) from None
        except OSError as exc:
            raise ScannerError(f"clamd at {self.settings.socket} cannot be reached: {exc}") from None

    async def _instream(self, data: bytes) -> Verdict:
        reader, writer = await self._connect()
        try:
            writer.write(b"zINSTREAM\0")
            for start in range(0, len(data), CHUNK):
                chunk = data[start : start + CHUNK]
                writer.write(struct.pack(">I", len(chunk)) + chunk)
                await writer.drain()
            writer.write(struct.pack(">I", 0))
            await writer.drain()
            reply = await reader.readuntil(b"\0")
        except asyncio.IncompleteReadError as exc:
            raise ScannerError(f"clamd closed the connection mid-scan ({exc.partial[:200]!r})") from None
        except asyncio.LimitOverrunError:
            raise ScannerError("clamd's answer is too long") from None
        finally:
            writer.close()
        return parse_reply(reply.rstrip(b"\0").decode("utf-8", "replace"))

    async def version(self) -> str:
        """clamd's VERSION answer, such as "ClamAV 1.0.7/27480/Thu Dec  3 08:26:02 2026"."""
        reader, writer = await asyncio.wait_for(self._connect(), self.settings.timeout)
        try:
            writer.write(b"zVERSION\0")
            await writer.drain()
            reply = await asyncio.wait_for(reader.readuntil(b"\0"), self.settings.timeout)
        finally:
            writer.close()
        return reply.rstrip(b"\0").decode("utf-8", "replace")

    async def ping(self) -> bool:
        reader, writer = await asyncio.wait_for(self._connect(), self.settings.timeout)
        try:
            writer.write(b"zPING\0")
            await writer.drain()
            return await asyncio.wait_for(reader.readuntil(b"\0"), self.settings.timeout) == b"PONG\0"
        finally:
            writer.close()


@dataclass(frozen=True)
class ScannerHealth:
    """What /healthz and /metrics say about clamd."""

    configured: bool
    reachable: bool = False
    version: str | None = None
    signatures_built: datetime | None = None  # None: clamd loaded no official database (or is unreachable)
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return not self.configured or self.reachable

    def signature_age(self, now: datetime) -> float | None:
        return (now - self.signatures_built).total_seconds() if self.signatures_built else None

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {
            "configured": self.configured,
            "reachable": self.reachable,
            "version": self.version,
            "signature_age_seconds": self.signature_age(now),
            "error": self.error,
        }


def no_scanner_warning(settings: VirusSettings) -> str | None:
    """Said loudly by `config check` and at start-up: a rule that looks on but scans nothing."""
    if settings.status != "off, no scanner":
        return None
    return (
        f"[policies.virus] is mode {settings.mode!r} but has no socket: attachments are NOT scanned for viruses. "
        'Set socket = "/run/clamav/clamd.ctl" (or "tcp://HOST:PORT") to scan, or mode = "off" to say so.'
    )


def signatures_built(version: str) -> datetime | None:
    """The build time of the daily database from a VERSION answer ("ClamAV 1.0.7/27480/Thu Dec  3 08:26:02 2026").

    clamd prints the time with ctime() in its own zone; the service runs in UTC (docs/DEPLOY.md)."""
    parts = version.split("/", 2)
    if len(parts) < 3:
        return None
    try:
        return datetime.strptime(" ".join(parts[2].split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


async def scanner_health(settings: VirusSettings) -> ScannerHealth:
    if settings.socket is None or settings.mode == "off":
        return ScannerHealth(configured=False)
    try:
        version = await Clamd(settings).version()
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return ScannerHealth(configured=True, error=f"clamd at {settings.socket} cannot be reached: {exc or 'timeout'}")
    return ScannerHealth(configured=True, reachable=True, version=version, signatures_built=signatures_built(version))


def parse_reply(reply: str) -> Verdict:
    """clamd's answer to INSTREAM: "stream: OK", "stream: Eicar-Signature FOUND", or an error."""
    _, _, result = reply.partition(": ")
    if result == "OK":
        return Verdict(False)
    if result.endswith(" FOUND"):
        return Verdict(True, result.removesuffix(" FOUND").strip())
    raise ScannerError(f"clamd answered {reply[:200]!r}")


class Virus(Policy):
    name = "virus"
    description = "Every attachment and file inside an archive is scanned by ClamAV (clamd); a virus is rejected, a scanner failure tempfails."
    Settings = VirusSettings

    def applies_to(self, message: Message) -> bool:
        settings: VirusSettings = self.settings  # type: ignore[assignment]
        return super().applies_to(message) and settings.socket is not None

    async def check(self, message: Message) -> list[Finding]:  # type: ignore[override] # waits on clamd
        settings: VirusSettings = self.settings  # type: ignore[assignment]
        if not message.attachments:  # headers and bodies are parsed already; no files, nothing to scan
            return []
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(
            None, _scannable, message
        )  # unpacking archives is CPU work: off the event loop
        if not files:
            return []
        scanner = Clamd(settings)
        too_big = [f for f in files if f.size > settings.max_stream]
        todo = [f for f in files if f.size <= settings.max_stream]
        limit = asyncio.Semaphore(settings.concurrency)

        async def scan(file: File) -> tuple[File, Verdict]:
            async with limit:
                assert file.data is not None
                return file, await scanner.instream(file.data)

        results = await asyncio.gather(*(scan(f) for f in todo))  # the first scanner error raises: tempfail
        infected = [(f, v) for f, v in results if v.infected]
        findings = []
        if infected:
            names = ", ".join(f"{_label(f)} ({v.signature})" for f, v in infected[:5])
            reason = (
                f"A virus was found in {names}; the message was refused so that it cannot harm anyone (rule {self.name}). "
                "If you sent it, scan your computer and send the message again without the infected file."
            )
            findings.append(self.finding(reason, [f"{f.path}: {v.signature}" for f, v in infected], reply="554 5.7.1"))
        if too_big:
            names = ", ".join(f"{_label(f)} ({format_size(f.size)})" for f in too_big[:5])
            reason = (
                f"{names} {'is' if len(too_big) == 1 else 'are'} larger than the virus scanner takes "
                f"({format_size(settings.max_stream)}), so IT will look at it before it is delivered (rule {self.name})."
            )
            findings.append(
                self.finding(
                    reason, [f"{f.path}: {f.size} bytes" for f in too_big], action="hold", hold_queue="quarantine"
                )
            )
        return findings


def _scannable(message: Message) -> list[File]:
    """Each distinct file with bytes: attachments and archive members (clamd unpacks formats we do not)."""
    seen: set[str] = set()
    files = []
    for file in files_of(message):
        if file.data is None or not file.data:
            continue
        digest = hashlib.sha256(file.data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            files.append(file)
    return files


def _label(file: File) -> str:
    return file.name if file.depth == 0 else f"{file.name} (inside {file.path.split('/')[1]})"
