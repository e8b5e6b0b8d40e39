"""The `clamd` fixture: a real ClamAV daemon (Debian's clamav-daemon) for the whole test session.

It loads only a signature database the fixture writes itself: one body
signature for the EICAR test string, so no freshclam and no network are
needed. clamd listens on a Unix socket and on a free loopback TCP port, in a
temporary folder, in the foreground, and is stopped at the end of the
session. When /usr/sbin/clamd is missing the tests fail; they never skip.
tests/conftest.py loads this for every test module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port

CLAMD = Path("/usr/sbin/clamd")
# The EICAR anti-virus test file (eicar.org): 68 harmless bytes every scanner detects.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "AupTest.EICAR"


@dataclass
class ClamdServer:
    folder: Path
    socket_path: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def detected_as(self) -> str:
        return f"{SIGNATURE}.UNOFFICIAL"  # clamd marks signatures from databases it has no signature file for

    def log(self) -> str:
        path = self.folder / "clamd.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"


def _pong(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(path))
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
    except OSError:
        return False


@pytest.fixture(scope="session")
def clamd() -> Iterator[ClamdServer]:
    if not CLAMD.exists():
        pytest.fail(f"{CLAMD} is missing: install Debian's clamav-daemon package (.ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="aup-clamd-"))
    database = folder / "db"
    database.mkdir()
    (database / "aup-test.ndb").write_text(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
    port = free_port()
    socket_path = folder / "clamd.sock"
    config = folder / "clamd.conf"
    config.write_text(
        "\n".join(
            [
                "Foreground yes",
                f"DatabaseDirectory {database}",
                f"LocalSocket {socket_path}",
                f"TCPSocket {port}",
                "TCPAddr 127.0.0.1",
                f"LogFile {folder / 'clamd.log'}",
                f"PidFile {folder / 'clamd.pid'}",
                "User root" if os.geteuid() == 0 else "",
                "StreamMaxLength 25M",
                "",
            ]
        )
    )
    process = subprocess.Popen([str(CLAMD), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = ClamdServer(folder, socket_path, port, process)
    try:
        deadline = time.monotonic() + 60
        while not _pong(socket_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clamd did not start (exit {process.poll()}):\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
