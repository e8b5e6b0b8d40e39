"""STARTTLS and SMTP AUTH, as real clients (smtplib, aiosmtplib, a raw socket) use them.

Outside clients may authenticate only over TLS; the trusted mail server may
authenticate in clear. An authenticated user may send anywhere, and the
archive records who it was.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import threading
import time
from pathlib import Path

import aiosmtplib
import pytest

from milter.kernel import passwords
from milter.kernel.passwords import PasswordFile, hash_password
from tests.conftest import TRUSTED, message_bytes
from tests.support.smtp_raw import OUTSIDE, RawSMTP, received_records, settle

LOGIN = "sortiz@example.gov"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)  # Argon2 is slow on purpose: once per module


@pytest.fixture
def tls_gateway(make_gateway, tls, tmp_path: Path, password_hash: str):
    def start(**smtp: object):
        passwd = tmp_path / "smtp-passwd"
        passwd.write_text(f"# logins for SMTP AUTH\n{LOGIN}:{password_hash}\n")
        return make_gateway(
            {"smtp": {"tls_cert": str(tls.cert), "tls_key": str(tls.key), "auth_passwords": str(passwd), **smtp}}
        )

    return start


def plain(login: str, password: str) -> str:
    return base64.b64encode(f"\0{login}\0{password}".encode()).decode()


def features(reply_text: str) -> set[str]:
    return {line.split()[0].upper() for line in reply_text.splitlines()[1:] if line}


def test_starttls_is_offered_and_works_with_a_verified_certificate(tls_gateway, tls, sink):
    gateway = tls_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, _ = client.starttls(context=tls.client_context())  # checks the certificate and the host name
        assert code == 220
        client.ehlo()
        assert not client.has_extn("starttls")
        assert set(client.esmtp_features["auth"].upper().split()) == {"LOGIN", "PLAIN"}
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.sendmail("pat@partner.org", ["dwhitfield@example.gov"], message_bytes(sender="pat@partner.org"))
    (delivered,) = sink.wait_for(1)
    assert b" with ESMTPS id " in delivered.data.split(b"\r\n\r\n")[0]


def test_auth_is_neither_offered_nor_accepted_before_tls_from_outside(tls_gateway, sink):
    gateway = tls_gateway()
    with RawSMTP(gateway.port, OUTSIDE) as client:
        assert "AUTH" not in features(client.ehlo().text)
        for command in (f"AUTH PLAIN {plain(LOGIN, PASSWORD)}", "AUTH LOGIN"):
            reply = client.command(command)
            assert str(reply).startswith("538 5.7.11"), reply
        # Still not authenticated: no relaying.
        assert client.command("MAIL FROM:<sortiz@example.gov>").code == 250
        assert str(client.command("RCPT TO:<someone@gmail.com>")).startswith("550 5.7.1")
    settle(0.3)
    assert sink.messages == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_authenticated_outside_user_may_relay_after_starttls(tls_gateway, tls, sink, mechanism):
    gateway = tls_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        client.starttls(context=tls.client_context())
        client.ehlo()
        client.user, client.password = LOGIN, PASSWORD
        code, text = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert (code, text[:5]) == (235, b"2.7.0")
        refused = client.sendmail(LOGIN, ["someone@gmail.com"], message_bytes(to="someone@gmail.com"))
    assert refused == {}
    (delivered,) = sink.wait_for(1)
    assert delivered.rcpt_tos == ["someone@gmail.com"]
    assert b" with ESMTPSA id " in delivered.data.split(b"\r\n\r\n")[0]
    (record,) = received_records(gateway.runtime)
    assert (record.auth_user, record.direction, record.client_ip) == (LOGIN, "outbound", OUTSIDE)


@pytest.mark.parametrize(
    "login, password",
    [(LOGIN, "wrong"), ("nobody@example.gov", PASSWORD), (LOGIN, "")],
    ids=["wrong-password", "unknown-login", "empty-password"],
)
def test_bad_credentials_get_535_and_no_relaying(tls_gateway, tls, sink, login, password):
    gateway = tls_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        client.starttls(context=tls.client_context())
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(login, password)
        assert refused.value.smtp_code == 535
        assert refused.value.smtp_error.startswith(b"5.7.8")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as relay:
            client.sendmail(LOGIN, ["someone@gmail.com"], message_bytes(to="someone@gmail.com"))
        assert relay.value.recipients["someone@gmail.com"][0] == 550
    settle(0.3)
    assert sink.messages == []


async def test_trusted_network_may_authenticate_without_tls(tls_gateway, sink):
    gateway = tls_gateway()
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=gateway.port, source_address=(TRUSTED, 0), start_tls=False, timeout=15
    )
    await client.connect()
    try:
        await client.ehlo()
        assert client.supports_extension("auth")
        response = await client.login(LOGIN, PASSWORD)
        assert response.code == 235
        errors, _ = await client.sendmail(LOGIN, ["someone@gmail.com"], message_bytes(to="someone@gmail.com"))
        assert errors == {}
    finally:
        await client.quit()
    await _wait_for(sink, 1)
    (record,) = received_records(gateway.runtime)
    assert (record.auth_user, record.direction, record.client_ip) == (LOGIN, "outbound", TRUSTED)


async def _wait_for(sink, count: int) -> None:
    for _ in range(400):
        if len(sink.messages) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the sink received {len(sink.messages)} messages, expected {count}")


def test_require_tls_refuses_mail_before_starttls(tls_gateway, tls, sink):
    gateway = tls_gateway(require_tls=True)
    for source in (OUTSIDE, TRUSTED):
        with RawSMTP(gateway.port, source) as client:
            client.ehlo()
            reply = client.command("MAIL FROM:<pat@partner.org>")
            assert reply.code == 530, reply
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        client.starttls(context=tls.client_context())
        assert (
            client.sendmail("pat@partner.org", ["dwhitfield@example.gov"], message_bytes(sender="pat@partner.org"))
            == {}
        )
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [["dwhitfield@example.gov"]]


def test_a_slow_password_check_does_not_stall_other_sessions(tls_gateway, monkeypatch):
    """Argon2 takes hundreds of milliseconds; it must not block the event loop every session shares."""
    gateway = tls_gateway()
    original = PasswordFile.verify

    def slow_verify(self, login: str, password: str) -> bool:
        time.sleep(1.5)
        return original(self, login, password)

    monkeypatch.setattr(PasswordFile, "verify", slow_verify)
    result: dict[str, int] = {}

    def authenticate() -> None:
        with RawSMTP(gateway.port, TRUSTED) as client:
            client.ehlo()
            result["code"] = client.command(f"AUTH PLAIN {plain(LOGIN, PASSWORD)}").code

    worker = threading.Thread(target=authenticate)
    worker.start()
    time.sleep(0.3)  # the AUTH is now being checked
    started = time.monotonic()
    with RawSMTP(gateway.port, OUTSIDE) as other:
        assert other.command("NOOP").code == 250
    waited = time.monotonic() - started
    worker.join(10)
    assert result == {"code": 235}
    assert waited < 0.8, f"another session waited {waited:.2f}s for a password check"


class CountingHasher:
    """Argon2, counting each hash and verify."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.calls: list[str] = []

    def hash(self, password: str) -> str:
        self.calls.append("hash")
        return self.real.hash(password)  # type: ignore[attr-defined]

    def verify(self, stored: str, password: str) -> bool:
        self.calls.append("verify")
        return self.real.verify(stored, password)  # type: ignore[attr-defined]


def test_an_unknown_login_costs_one_argon2_check_like_a_wrong_password(tmp_path, password_hash, monkeypatch):
    """Otherwise timing would tell an attacker which logins exist."""
    path = tmp_path / "smtp-passwd"
    path.write_text(f"{LOGIN}:{password_hash}\n")
    logins = PasswordFile(path)
    logins.verify("nobody@example.gov", "warm-up")  # the decoy hash may be made once per process
    hasher = CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    assert logins.verify("nobody@example.gov", PASSWORD) is False
    unknown, hasher.calls = hasher.calls, []
    assert logins.verify(LOGIN, "wrong") is False
    assert unknown == hasher.calls == ["verify"]
