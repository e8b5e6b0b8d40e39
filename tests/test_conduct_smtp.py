"""The conduct rules over real SMTP, through the real gateway, on SQLite and PostgreSQL.

The agency mail server (the trusted client, 127.0.0.2) sends a chain letter
to a group, an inbox-rule forward and an ordinary message to Gmail, and the
same chain text from several colleagues, which the gateway counts from the
fingerprints it records when it accepts mail.
"""

from __future__ import annotations

import smtplib
from pathlib import Path

from sqlalchemy import select

from policies.rules import fingerprints
from quarantine import holds
from tests.conftest import TRUSTED, message_bytes
from tests.support.smtp_raw import received_records, settle

CHAIN = Path(__file__).resolve().parent / "data" / "conduct" / "chain" / "01-st-jude-luck.eml"
STORY = (
    "A little girl walked along a beach covered in starfish washed up by the storm. One by one she threw them back\r\n"
    "into the sea. A man laughed and told her she could never save them all, it made no difference. She picked up\r\n"
    "another, threw it into the waves and said: it made a difference to that one. Kindness is like that: small\r\n"
    "things done with love, again and again, change the world one life at a time, one friend at a time.\r\n\r\n"
    "Send this to 10 friends and keep the chain going.\r\n"
)


def chain_letter() -> bytes:
    return CHAIN.read_bytes().replace(b"\n", b"\r\n")  # SMTP lines end in CRLF


def send(port: int, raw: bytes, mail_from: str, rcpts: list[str]) -> tuple[int, str]:
    """(code, reply text on one line, without its enhanced status) for one message from the agency mail server."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0), timeout=30) as client:
        try:
            client.sendmail(mail_from, rcpts, raw)
        except smtplib.SMTPDataError as error:
            lines = [
                line.removeprefix("5.7.1 ") for line in error.smtp_error.decode().splitlines()
            ]  # a long reply is multi-line
            return error.smtp_code, " ".join(" ".join(lines).split())
        return 250, ""


def test_a_chain_letter_to_a_group_is_rejected_with_a_reason_quoting_its_cues(make_gateway, sink):
    gateway = make_gateway()
    code, reply = send(gateway.port, chain_letter(), "sortiz@example.gov", ["public-works-team@example.gov"])
    assert code == 550, reply
    assert "looks like a chain letter" in reply and "(rule chain_letters)" in reply
    [record] = [r for r in received_records(gateway.runtime) if r.kind == "received"]
    assert record.action == "reject"
    [finding] = [f for f in record.findings if f["policy"] == "chain_letters"]
    quotes = [
        item.split(": ", 1)[1]
        for item in finding["evidence"]
        if item.split(" ", 1)[0] in {"forward", "luck", "deadline"}
    ]
    assert len(quotes) >= 3 and all(" ".join(quote.split()) in reply for quote in quotes), (quotes, reply)
    settle(0.3)
    assert sink.messages == []


def test_held_instead_when_the_config_says_hold(make_gateway, sink):
    gateway = make_gateway({"policies": {"chain_letters": {"action": "hold"}}})
    code, _ = send(gateway.port, chain_letter(), "sortiz@example.gov", ["public-works-team@example.gov"])
    assert code == 250
    with gateway.runtime.database.read() as connection:
        [held] = holds.listing(connection, "quarantine")
    assert "chain letter" in held["reason"] and '"Do not keep this letter"' in held["reason"]
    settle(0.3)
    assert sink.messages == []


def test_an_inbox_rule_forward_to_gmail_is_rejected_and_an_ordinary_message_is_delivered(make_gateway, sink):
    gateway = make_gateway()
    forwarded = message_bytes(
        sender="sortiz@example.gov",
        to="sam.ortiz.home@gmail.com",
        subject="FW: salt delivery",
        extra_headers="X-MS-Exchange-Inbox-Rules-Loop: sortiz@example.gov\r\nAuto-Submitted: auto-generated\r\n",
    )
    code, reply = send(gateway.port, forwarded, "sortiz@example.gov", ["sam.ortiz.home@gmail.com"])
    assert code == 550 and "personal webmail" in reply and "X-MS-Exchange-Inbox-Rules-Loop" in reply, reply

    ordinary = message_bytes(
        sender="sortiz@example.gov", to="pat.friend@gmail.com", subject="Saturday", body="See you at the game.\r\n"
    )
    assert send(gateway.port, ordinary, "sortiz@example.gov", ["pat.friend@gmail.com"]) == (250, "")
    [delivered] = sink.wait_for(1)
    assert delivered.rcpt_tos == ["pat.friend@gmail.com"] and b"See you at the game." in delivered.data


def test_the_same_chain_text_from_several_colleagues_is_counted_from_what_was_accepted(make_gateway, sink):
    # Words alone give 6 (tag at 4); the third sender's copy adds the spread (4) and is held at 7.
    gateway = make_gateway({"policies": {"chain_letters": {"thresholds": {"tag": 4, "hold": 7, "reject": 12}}}})
    replies = []
    for sender in ("lpark@example.gov", "cnguyen@example.gov", "dwhitfield@example.gov"):
        raw = message_bytes(
            sender=sender,
            to="all-staff@example.gov",
            subject="FW: starfish",
            body=f"Passing this on - {sender}\r\n\r\n{STORY}",
        )
        replies.append(send(gateway.port, raw, sender, ["all-staff@example.gov"]))
    assert [code for code, _ in replies] == [250, 250, 250]
    delivered = sink.wait_for(2)
    settle(0.3)
    assert len(delivered) == 2 and all(b"X-AUP-Milter-Tag: chain_letters" in m.data for m in delivered)
    records = [r for r in received_records(gateway.runtime) if r.kind == "received"]
    assert [r.action for r in records] == ["deliver", "deliver", "hold"]
    [finding] = [f for f in records[2].findings if f["policy"] == "chain_letters"]
    assert "the same text came from 3 senders" in finding["reason"]
    with gateway.runtime.database.read() as connection:
        senders = connection.execute(select(fingerprints.message_fingerprint.c.sender)).scalars().all()
    assert sorted(senders) == ["cnguyen@example.gov", "dwhitfield@example.gov", "lpark@example.gov"]
