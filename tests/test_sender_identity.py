"""Staff must not send as someone else: the SMTP AUTH user and the From, Sender and MAIL FROM they use.

The rule on its own, then over real SMTP: a client logs in (AUTH PLAIN over
STARTTLS from outside, or from the trusted network) and the gateway answers.
"""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from milter.kernel.directory import load_directory
from milter.kernel.passwords import hash_password
from milter.kernel.settings import ConfigError
from milter.mail.message import Envelope, Message
from policies.base import Action
from policies.rules.sender_identity import SenderIdentity, SenderIdentitySettings
from tests.conftest import EXAMPLE_DIRECTORY, TRUSTED, message_bytes
from tests.support.smtp_raw import OUTSIDE, received_records, settle

PASSWORD = "correct horse battery staple"
DELEGATION = '\n[[people]]\naddress = "afoster@example.gov"\nname = "Alex Foster"\ntitle = "Executive Assistant"\nsend_as = ["dwhitfield@example.gov"]\n'


def directory_with(tmp_path: Path, extra: str = DELEGATION) -> Path:
    path = tmp_path / "directory-with-delegation.toml"
    path.write_text(EXAMPLE_DIRECTORY.read_text() + extra)
    return path


def check(
    raw: bytes,
    *,
    login: str | None = None,
    mail_from: str = "sortiz@example.gov",
    trusted: bool = False,
    directory_path: Path = EXAMPLE_DIRECTORY,
    **settings: object,
) -> list:
    rule = SenderIdentity(SenderIdentitySettings(**settings), load_directory(directory_path))
    envelope = Envelope(
        mail_from,
        ("jdoe@example.gov",),
        client_ip=TRUSTED if trusted else "198.51.100.9",
        auth_user=login,
        trusted=trusted,
    )
    return rule.check(Message(envelope, raw, "internal"))


def test_a_login_may_send_as_itself_its_aliases_and_shared_mailboxes_it_is_listed_on(tmp_path):
    assert check(message_bytes(sender="Sam Ortiz <sortiz@example.gov>"), login="sortiz@example.gov") == []
    assert (
        check(message_bytes(sender="sortiz@example.gov"), login="sortiz") == []
    )  # a bare login in the agency's domain
    assert check(message_bytes(sender="Permits Office <permits@example.gov>"), login="sortiz@example.gov") == []
    aliased = directory_with(
        tmp_path,
        '\n[[people]]\naddress = "rkim@example.gov"\nname = "Robin Kim"\naliases = ["robin.kim@example.gov"]\n',
    )
    assert (
        check(
            message_bytes(sender="robin.kim@example.gov"),
            login="rkim@example.gov",
            mail_from="rkim@example.gov",
            directory_path=aliased,
        )
        == []
    )
    assert (
        check(message_bytes(sender="sortiz@example.gov"), login="sortiz@example.gov", mail_from="") == []
    )  # the null sender


def test_someone_elses_from_is_refused_naming_the_login_and_the_claim():
    (finding,) = check(message_bytes(sender="Dana Whitfield <dwhitfield@example.gov>"), login="sortiz@example.gov")
    assert (finding.action, finding.reply) == (Action.REJECT, "550 5.7.1")
    assert finding.reason.startswith(
        "You are logged in as sortiz@example.gov (Sam Ortiz) but the message's "
        "From dwhitfield@example.gov (Dana Whitfield) is an identity you may not send as."
    )
    assert "You may send as: sortiz@example.gov, permits@example.gov." in finding.reason
    assert "ask IT to add a delegation (send_as)" in finding.reason
    assert "From: dwhitfield@example.gov" in finding.evidence


def test_sender_and_envelope_are_held_to_the_same_rule():
    (finding,) = check(
        message_bytes(sender="sortiz@example.gov", extra_headers="Sender: jdoe@example.gov\r\n"),
        login="sortiz@example.gov",
    )
    assert "Sender jdoe@example.gov (Jane Doe)" in finding.reason
    (finding,) = check(
        message_bytes(sender="sortiz@example.gov"), login="sortiz@example.gov", mail_from="jdoe@example.gov"
    )
    assert "envelope sender jdoe@example.gov" in finding.reason
    assert (
        check(
            message_bytes(sender="sortiz@example.gov"),
            login="sortiz@example.gov",
            mail_from="jdoe@example.gov",
            check_envelope=False,
        )
        == []
    )
    (finding,) = check(message_bytes(sender="Pat <pat@partner.org>"), login="sortiz@example.gov")
    assert "From pat@partner.org is an identity you may not send as" in finding.reason


def test_a_delegation_in_the_directory_lets_an_assistant_send_for_the_director(tmp_path):
    delegated = directory_with(tmp_path)
    raw = message_bytes(sender="Dana Whitfield <dwhitfield@example.gov>")
    assert check(raw, login="afoster@example.gov", mail_from="afoster@example.gov", directory_path=delegated) == []
    assert check(raw, login="afoster@example.gov", mail_from="dwhitfield@example.gov", directory_path=delegated) == []
    (refused,) = check(
        message_bytes(sender="jdoe@example.gov"),
        login="afoster@example.gov",
        mail_from="afoster@example.gov",
        directory_path=delegated,
    )
    assert "You may send as: afoster@example.gov, dwhitfield@example.gov." in refused.reason


def test_a_shared_mailbox_that_logs_in_itself_may_send_as_that_mailbox_only():
    assert (
        check(
            message_bytes(sender="Permits Office <permits@example.gov>"),
            login="permits",
            mail_from="permits@example.gov",
        )
        == []
    )
    (finding,) = check(
        message_bytes(sender="sortiz@example.gov"), login="permits@example.gov", mail_from="permits@example.gov"
    )
    assert finding.reason.startswith(
        "You are logged in as permits@example.gov (shared mailbox Permits Office) but the message's "
        "From sortiz@example.gov (Sam Ortiz)"
    )


def test_an_unknown_login_is_refused_and_can_be_relaxed():
    (finding,) = check(message_bytes(sender="scanner@example.gov"), login="scanner")
    assert (
        finding.action == Action.REJECT
        and "You are logged in as scanner, which is not in the agency directory" in finding.reason
    )
    (finding,) = check(message_bytes(sender="scanner@example.gov"), login="scanner", unknown_login="monitor")
    assert finding.action == Action.DELIVER


def test_the_trusted_server_with_an_unknown_local_from_gets_the_configured_action():
    raw = message_bytes(sender="Copier <copier-3f@example.gov>")
    assert check(raw, trusted=True, mail_from="copier-3f@example.gov") == []  # off unless set
    (finding,) = check(raw, trusted=True, mail_from="copier-3f@example.gov", unknown_local_sender="hold")
    assert (finding.action, finding.hold_queue) == (Action.HOLD, "quarantine")
    assert "does not list (copier-3f@example.gov)" in finding.reason
    assert check(message_bytes(sender="sortiz@example.gov"), trusted=True, unknown_local_sender="hold") == []
    assert (
        check(message_bytes(sender="all-staff@example.gov"), trusted=True, unknown_local_sender="hold") == []
    )  # a group
    assert (
        check(message_bytes(sender="permits@example.gov"), trusted=True, unknown_local_sender="hold") == []
    )  # a shared mailbox


def test_shared_mailboxes_in_the_directory_are_checked_when_it_loads(tmp_path):
    bad = directory_with(tmp_path, '\n[[mailboxes]]\naddress = "desk@example.gov"\nsenders = ["nobody@example.gov"]\n')
    with pytest.raises(ConfigError) as error:
        load_directory(bad)
    assert error.value.key == "mailboxes.1.senders" and "nobody@example.gov is not in [[people]]" in error.value.problem
    twice = directory_with(tmp_path, '\n[[mailboxes]]\naddress = "sortiz@example.gov"\n')
    with pytest.raises(ConfigError, match="also a person"):
        load_directory(twice)
    directory = load_directory(EXAMPLE_DIRECTORY)
    assert directory.knows_recipient("permits@example.gov")  # mail to a shared mailbox is accepted at RCPT


# -- over real SMTP ---------------------------------------------------------------


@pytest.fixture
def auth_gateway(make_gateway, tls, tmp_path):
    def start(directory: Path | None = None):
        passwd = tmp_path / "smtp-passwd"
        password = hash_password(PASSWORD)
        passwd.write_text("".join(f"{login}:{password}\n" for login in ("sortiz@example.gov", "afoster@example.gov")))
        extra: dict = {"smtp": {"tls_cert": str(tls.cert), "tls_key": str(tls.key), "auth_passwords": str(passwd)}}
        if directory is not None:
            extra["directory"] = {"path": str(directory)}
        return make_gateway(extra)

    return start


def submit(gateway, tls, login: str, sender: str, mail_from: str, source: str = OUTSIDE):
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(source, 0)) as client:
        if source == OUTSIDE:
            client.starttls(context=tls.client_context())
        client.ehlo()
        client.login(login, PASSWORD)
        return client.sendmail(mail_from, ["jdoe@example.gov"], message_bytes(sender=sender, to="jdoe@example.gov"))


def test_over_smtp_auth_as_sortiz_with_dwhitfields_from_is_rejected(auth_gateway, tls, sink):
    gateway = auth_gateway()
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(gateway, tls, "sortiz@example.gov", "Dana Whitfield <dwhitfield@example.gov>", "sortiz@example.gov")
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error.decode()
    assert (
        "5.7.1 You are logged in as sortiz@example.gov (Sam Ortiz)" in text
        and "From dwhitfield@example.gov (Dana Whitfield)" in text
    )
    settle(0.3)
    assert sink.messages == []
    (record,) = received_records(gateway.runtime)
    assert (record.action, record.auth_user) == ("reject", "sortiz@example.gov")
    assert [f["policy"] for f in record.findings if f["action"] == "reject"] == ["sender_identity"]
    assert submit(gateway, tls, "sortiz@example.gov", "Sam Ortiz <sortiz@example.gov>", "sortiz@example.gov") == {}
    sink.wait_for(1)


def test_over_smtp_the_same_send_passes_with_a_delegation_in_the_directory(auth_gateway, tls, sink, tmp_path):
    text = EXAMPLE_DIRECTORY.read_text()
    assert 'name = "Sam Ortiz"\n' in text
    delegated = tmp_path / "delegated.toml"
    delegated.write_text(
        text.replace('name = "Sam Ortiz"\n', 'name = "Sam Ortiz"\nsend_as = ["dwhitfield@example.gov"]\n') + DELEGATION
    )
    gateway = auth_gateway(delegated)
    assert (
        submit(gateway, tls, "sortiz@example.gov", "Dana Whitfield <dwhitfield@example.gov>", "sortiz@example.gov")
        == {}
    )
    (delivered,) = sink.wait_for(1)
    assert b"From: Dana Whitfield <dwhitfield@example.gov>" in delivered.data
    # An assistant's delegation, from the trusted network: for the director only.
    assert (
        submit(
            gateway,
            tls,
            "afoster@example.gov",
            "Dana Whitfield <dwhitfield@example.gov>",
            "afoster@example.gov",
            source=TRUSTED,
        )
        == {}
    )
    sink.wait_for(2)
    with pytest.raises(smtplib.SMTPDataError):
        submit(
            gateway, tls, "afoster@example.gov", "Jane Doe <jdoe@example.gov>", "afoster@example.gov", source=TRUSTED
        )
