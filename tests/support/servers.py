"""Real servers for the tests: PostgreSQL and Postfix (and, later, clamd) on loopback ports.

A test that needs one of these fails when the server cannot be started; it
never skips. `.ci/run` installs them from Debian's packages.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], timeout: float = 20.0, what: str = "the condition") -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


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
        raise RuntimeError(
            "running as root but there is no 'postgres' user: install Debian's postgresql package"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
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
        subprocess.run(
            [
                *self.prefix,
                postgres_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        options = f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} -c fsync=on -c max_connections=300"
        subprocess.run(
            [
                *self.prefix,
                postgres_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.folder / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        wait_for_port(self.port)
        return self

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                *self.prefix,
                postgres_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True
        )


# -- Postfix ----------------------------------------------------------------

POSTFIX_DOMAINS = ("example.gov", "example.org", "example.net")
POSTFIX_REFUSE = {"bounce-me": "550 5.1.1 no such mailbox here"}  # local part -> the reply to RCPT TO
POSTFIX_TRACE = (b"return-path", b"x-original-to", b"delivered-to")  # what the virtual agent prepends

# Only the services a relay-to-Maildir instance uses; nothing chrooted, nothing on port 25.
POSTFIX_MASTER = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


# What an admin puts in main.cf for the gateway's milter (README), with short timeouts for the tests.
MILTER_MAIN = {
    "milter_protocol": "6",
    "milter_default_action": "tempfail",
    "milter_connect_macros": "j {daemon_name} v {client_addr} {client_name}",
    "milter_helo_macros": "{tls_version} {cipher}",
    "milter_mail_macros": "i {auth_type} {auth_authen} {mail_addr}",
    "milter_end_of_data_macros": "i",
    "milter_connect_timeout": "5s",
    "milter_command_timeout": "10s",
    "milter_content_timeout": "10s",
}


@dataclass(frozen=True)
class Delivered:
    """One file in the Postfix Maildir: who it was delivered to, and its bytes as stored (LF line ends)."""

    rcpt: str
    data: bytes
    path: Path

    @property
    def return_path(self) -> str:
        for line in self.data.split(b"\n"):
            if line.lower().startswith(b"return-path:"):
                return line.split(b":", 1)[1].strip().decode()
        raise AssertionError(f"{self.path} has no Return-Path header")

    def without_trace(self) -> bytes:
        """The message as Postfix received it: the virtual agent's headers and Postfix's Received removed."""
        rest = self.data
        for name in (*POSTFIX_TRACE, b"received"):
            line_end = _header_end(rest)
            name_found = rest[: rest.index(b":")].lower()
            assert name_found == name, f"{self.path}: expected a {name!r} header, found {rest[:line_end]!r}"
            if name == b"received":
                assert b"(Postfix)" in rest[:line_end], f"{self.path}: the first Received header is not Postfix's"
            rest = rest[line_end:]
        return rest


def _header_end(data: bytes) -> int:
    """Where the first (possibly folded) header field of `data` ends."""
    end = data.index(b"\n") + 1
    while data[end : end + 1] in (b" ", b"\t"):
        end = data.index(b"\n", end) + 1
    return end


def postfix_command() -> str:
    found = shutil.which("postfix") or ("/usr/sbin/postfix" if os.path.exists("/usr/sbin/postfix") else None)
    if not found:
        raise RuntimeError("Postfix was not found: install Debian's postfix package (.ci/run does)")
    if os.geteuid() != 0:
        raise RuntimeError("a private Postfix instance needs root (postfix -c DIR start)")
    return found


class PostfixServer:
    """A throwaway Postfix with its own config, queue and data folders, in `folder`.

    smtpd listens on a free loopback port; every recipient in POSTFIX_DOMAINS
    is delivered by the virtual agent into one Maildir (`mail/inbox`), where
    the Delivered-To header names the recipient. `refuse` maps a local part to
    the reply Postfix gives at RCPT TO. The system instance is never touched.
    """

    def __init__(self, folder: Path, refuse: dict[str, str] | None = None, milter: str | None = None) -> None:
        self.command = postfix_command()
        self.milter = milter  # "inet:HOST:PORT": smtpd asks this milter about every message
        self.folder = folder
        self.config = folder / "etc"
        self.maildir = folder / "mail" / "inbox"
        self.maillog = folder / "maillog"
        self.port = free_port()
        self.reinject_port = free_port()  # with a milter: an smtpd that skips it, for what the gateway releases
        self.refuse = dict(POSTFIX_REFUSE if refuse is None else refuse)
        self._running = False
        self._stop_at_exit = False

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        nobody = pwd.getpwnam("nobody")
        for sub in ("etc", "queue", "data", "mail"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)  # Postfix's daemons run as the postfix user and must reach the queue
        shutil.chown(self.folder / "data", "postfix", "postfix")
        os.chown(self.folder / "mail", nobody.pw_uid, nobody.pw_gid)
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.folder / "queue",
            "data_directory": self.folder / "data",
            "myhostname": "postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "postfix.test",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.folder,
            "smtp_host_lookup": "native",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "local_header_rewrite_clients": "",  # deliver what arrives unchanged
            "default_transport": "error:this test Postfix delivers only to its own domains",
            "relay_transport": "error:this test Postfix relays nowhere",
            "biff": "no",
            "virtual_mailbox_domains": ", ".join(POSTFIX_DOMAINS),
            "virtual_mailbox_base": self.folder / "mail",
            "virtual_mailbox_maps": "static:inbox/",  # trailing slash: Maildir
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "smtpd_recipient_restrictions": f"check_recipient_access regexp:{self.config / 'refuse'}, permit_mynetworks, reject_unauth_destination",
        }
        master = POSTFIX_MASTER.format(listen=f"127.0.0.1:{self.port}")
        if self.milter:
            main.update(MILTER_MAIN, smtpd_milters=self.milter, non_smtpd_milters=self.milter)
            master += f"127.0.0.1:{self.reinject_port} inet n - n - - smtpd -o smtpd_milters= -o non_smtpd_milters=\n"
        (self.config / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in main.items()))
        (self.config / "master.cf").write_text(master)
        (self.config / "refuse").write_text(
            "".join(f"/^{re.escape(local)}@/ {reply}\n" for local, reply in self.refuse.items())
        )
        # Postfix waits until a config file is over a second old (it may still be being written): backdate them.
        past = time.time() - 60
        for path in self.config.iterdir():
            os.utime(path, (past, past))

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Output goes to a file, not a pipe: the daemons it starts inherit the
        # descriptors, and reading a pipe would wait for them to let go.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [self.command, "-c", str(self.config), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=60,
            )
            output.seek(0)
            return subprocess.CompletedProcess(result.args, result.returncode, output.read(), "")

    def start(self) -> PostfixServer:
        if not (self.config / "main.cf").exists():
            self._write_config()
            _copy_queue_skeleton(self.folder / "queue")
        result = self._postfix("start")
        if not self._stop_at_exit:
            atexit.register(self.stop)  # even if a test run is cut short, no Postfix outlives it
            self._stop_at_exit = True
        self._running = True  # from here on stop() must run, even if start half failed
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"postfix start failed ({result.returncode}): {result.stdout}\n{self.log()}")
        wait_for_port(self.port, timeout=20)
        return self

    def stop(self) -> None:
        """Stop the instance and wait until nothing answers on its port (the downstream is down)."""
        if not self._running:
            return
        self._postfix("stop")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (self._master_alive() or _port_open(self.port)):
            time.sleep(0.05)
        pid = self._master_pid()
        if pid and self._master_alive():
            os.kill(pid, signal.SIGKILL)
        self._running = False

    def _master_pid(self) -> int | None:
        try:
            return int((self.folder / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _master_alive(self) -> bool:
        pid = self._master_pid()
        if pid is None:
            return False
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else "(no maillog)"

    def queue_is_empty(self) -> bool:
        """No message waits in Postfix's own queue (everything accepted was delivered or bounced)."""
        queue = self.folder / "queue"
        return not any(
            path.is_file() for sub in ("incoming", "active", "deferred") for path in (queue / sub).rglob("*")
        )

    def messages(self) -> list[Delivered]:
        new = self.maildir / "new"
        if not new.is_dir():
            return []
        found = []
        for path in sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
            data = path.read_bytes()
            rcpt = next(
                (
                    line.split(b":", 1)[1].strip().decode()
                    for line in data.split(b"\n")
                    if line.lower().startswith(b"delivered-to:")
                ),
                "",
            )
            found.append(Delivered(rcpt, data, path))
        return found

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"Postfix delivered {len(self.messages())} messages, expected {count}; its log:\n{self.log()[-4000:]}"
        )


_skeleton: Path | None = None


def _copy_queue_skeleton(queue: Path) -> None:
    """Give a new instance a ready queue directory and skip Postfix's slow start-up checks.

    `postfix start` first runs `post-install create-missing` and a long
    permission check (seconds); both only matter for a new installation. We
    run create-missing once per test session, copy its result (owners and
    modes kept) and leave the `quick-start` marker that `postfix quick-stop`
    leaves, so each start takes a fraction of a second.
    """
    global _skeleton
    if _skeleton is None:
        template = PostfixServer(Path(tempfile.mkdtemp(prefix="aup-pf-skel-")))
        template._write_config()
        result = template._postfix("post-install", "create-missing")
        if result.returncode != 0:
            raise RuntimeError(f"postfix post-install create-missing failed: {result.stdout}")
        atexit.register(shutil.rmtree, template.folder, True)
        _skeleton = template.folder / "queue"
    queue.rmdir()
    subprocess.run(["cp", "-a", str(_skeleton), str(queue)], check=True)
    (queue / "quick-start").touch()


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
