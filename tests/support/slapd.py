"""A real OpenLDAP slapd for the directory tests, on a free loopback port with its own config.

It loads OpenLDAP's core, cosine and inetorgperson schemas plus a small schema
modelling Active Directory's attributes (tests/support/ldap/ad-like.schema) and
the agency sample (agency.ldif). A test that needs it fails when Debian's
`slapd` is missing; it never skips. `.ci/run` installs slapd and ldap-utils.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support.servers import free_port, wait_for_port

HERE = Path(__file__).parent / "ldap"
SUFFIX = "dc=example,dc=gov"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "ldap-test-secret"

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {here}/ad-like.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
sizelimit {sizelimit}
database mdb
maxsize 104857600
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {folder}/data
index objectClass eq
access to * by * read
"""


def _bin(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if not found:
        raise RuntimeError(f"OpenLDAP's {name} was not found: install Debian's slapd package (.ci/run does)")
    return found


class Slapd:
    """A throwaway slapd; `ldif` is loaded with slapadd before it starts (and again on `restart`)."""

    def __init__(self, ldif: Path = HERE / "agency.ldif", *, sizelimit: int = 500) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="aup-slapd-"))
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        (self.folder / "data").mkdir()
        conf = CONFIG.format(
            here=HERE, folder=self.folder, suffix=SUFFIX, admin=ADMIN_DN, password=ADMIN_PASSWORD, sizelimit=sizelimit
        )
        (self.folder / "slapd.conf").write_text(conf)
        (self.folder / "password").write_text(ADMIN_PASSWORD + "\n")
        subprocess.run(
            [_bin("slapadd"), "-f", str(self.folder / "slapd.conf"), "-l", str(ldif)],
            check=True,
            capture_output=True,
        )

    @property
    def password_file(self) -> Path:
        return self.folder / "password"

    def start(self) -> Slapd:
        with (self.folder / "slapd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [_bin("slapd"), "-d", "0", "-f", str(self.folder / "slapd.conf"), "-h", self.url],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(
                f"slapd did not start: {(self.folder / 'slapd.log').read_text(errors='replace')}"
            ) from None
        return self

    def modify(self, ldif: str) -> None:
        """Apply an LDIF change (ldapmodify) to the running server."""
        subprocess.run(
            [_bin("ldapmodify"), "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=ldif.encode(),
            check=True,
            capture_output=True,
        )

    def kill(self) -> None:
        """Stop it the hard way (an LDAP server that dies)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
