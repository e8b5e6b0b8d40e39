"""A raw-socket SMTP client for tests that must send bytes no library would.

smtplib and aiosmtplib fix line endings and refuse CR or LF in arguments;
an attacker does not. `RawSMTP` writes exactly the bytes it is given and
reads replies as the server sent them.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from sqlalchemy import func, select

from archive import records
from milter.delivery import queue
from tests.conftest import TRUSTED

OUTSIDE = "127.0.0.1"  # any loopback address other than TRUSTED is an outside client


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # every line's text joined by newlines, without the codes

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class RawSMTP:
    def __init__(self, port: int, source: str = OUTSIDE, timeout: float = 15.0) -> None:
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.buffer = b""
        self.banner = self.reply()

    def __enter__(self) -> RawSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"the server closed the connection; unread: {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> Reply:
        """One reply, multi-line or not (RFC 5321 section 4.2.1)."""
        texts = []
        while True:
            line = self._line()
            texts.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return Reply(int(line[:3]), "\n".join(texts))

    def command(self, line: bytes | str) -> Reply:
        """Send one command line (CRLF is added) and read its reply."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def replies(self, quiet: float = 0.5) -> list[Reply]:
        """Every reply the server sends until it has been quiet for `quiet` seconds."""
        found = []
        self.sock.settimeout(quiet)
        try:
            while True:
                found.append(self.reply())
        except TimeoutError:
            return found
        finally:
            self.sock.settimeout(self.timeout)

    def ehlo(self, name: str = "client.test") -> Reply:
        return self.command(f"EHLO {name}")

    def close(self) -> None:
        self.sock.close()


def stored_state(runtime) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(archive records, deliveries, delivery recipients) in the gateway's database."""
    with runtime.database.read() as connection:
        return (
            connection.execute(select(func.count()).select_from(records.archive_record)).scalar_one(),
            connection.execute(select(func.count()).select_from(queue.delivery)).scalar_one(),
            connection.execute(select(func.count()).select_from(queue.delivery_rcpt)).scalar_one(),
        )


def received_records(runtime) -> list:  # type: ignore[no-untyped-def]
    with runtime.database.read() as connection:
        return list(connection.execute(select(records.archive_record).order_by(records.archive_record.c.id)).all())


def settle(seconds: float = 0.5) -> None:
    """Give a gateway time to do something it must not do (deliver a second message)."""
    time.sleep(seconds)


def bare_line_endings(data: bytes) -> list[int]:
    """Offsets of every CR not followed by LF and every LF not preceded by CR."""
    bad = [i for i, byte in enumerate(data) if byte == 0x0D and data[i + 1 : i + 2] != b"\n"]
    bad += [i for i, byte in enumerate(data) if byte == 0x0A and (i == 0 or data[i - 1] != 0x0D)]
    return sorted(bad)


__all__ = ["OUTSIDE", "TRUSTED", "RawSMTP", "Reply", "bare_line_endings", "received_records", "settle", "stored_state"]
