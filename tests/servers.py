"""Real servers for the tests: PostgreSQL (and, later, Postfix and clamd) on loopback ports.

A test that needs one of these fails when the server cannot be started; it
never skips. `.ci/run` installs them from Debian's packages.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root; run its tools as the postgres user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root but there is no 'postgres' user: install Debian's postgresql package") from None
    return ["runuser", "-u", "postgres", "--"]


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} was not found: install Debian's postgresql package (.ci/run does)")
    return found[-1]


class PostgresServer:
    """A throwaway cluster in a temporary folder, trusting local connections."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.prefix = _as_postgres_user()

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run([*self.prefix, postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        options = f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} -c fsync=on -c max_connections=300"
        subprocess.run([*self.prefix, postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                        "-o", options, "-w", "start"], check=True, capture_output=True)
        wait_for_port(self.port)
        return self

    def create_database(self, name: str) -> str:
        subprocess.run([*self.prefix, postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
