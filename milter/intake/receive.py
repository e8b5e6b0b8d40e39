"""What every front-end does with a message it has read: rules, durable store, then the answer.

The SMTP relay (relay.py) and the milter listener (milter_listener.py) both
build an Envelope and the raw bytes, and call `receive`. It runs the pipeline,
has `accept.store` make the message durable (blob fsync + commit), and only
then returns a Received whose reply may be sent. Any failure to store is a
tempfail: nothing is answered 250 that the gateway could lose.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import re
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime
from typing import TYPE_CHECKING

from milter.intake import accept
from milter.intake.direction import direction_of
from milter.intake.pipeline import Decision, tempfail
from milter.kernel.db import utcnow
from milter.mail.message import Envelope, Message
from policies.base import Action, Finding

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

HELO_UNSAFE = re.compile(r"[^\x21-\x7e]")  # anything but printable ASCII without spaces
TEMPFAIL = "451 4.3.0 Internal error; the message was not accepted, please try again later"
NO_SPACE = "452 4.3.1 Insufficient system storage; please try again later"


def format_reply(reply: str) -> str:
    """An SMTP reply: ASCII, lines of at most ~400 characters, multi-line when long."""
    reply = reply.encode("ascii", "replace").decode("ascii")
    code, _, rest = reply.partition(" ")
    status = ""
    if rest[:1] in "245" and rest.split(" ", 1)[0].count(".") == 2:
        status, _, rest = rest.partition(" ")
    prefix = f"{code} {status} " if status else f"{code} "
    lines = textwrap.wrap(" ".join(rest.split()), 400) or [""]
    return "\r\n".join(
        (prefix if i == len(lines) - 1 else prefix.replace(" ", "-", 1)) + line for i, line in enumerate(lines)
    )


def safe_helo(helo: str) -> str:
    """The client's HELO name as one token: it goes into a header, so no CR, LF or spaces."""
    return HELO_UNSAFE.sub("?", helo)[:255] or "unknown"


def received_header(message: Message, hostname: str) -> bytes:
    env = message.envelope
    protocol = "ESMTP" + ("S" if env.tls else "") + ("A" if env.auth_user else "")
    recipient = f"\r\n\tfor <{env.rcpt_to[0]}>" if len(env.rcpt_to) == 1 else ""
    value = (
        f"from {safe_helo(env.helo)} ([{env.client_ip}])\r\n\tby {hostname} (aup-milter) with {protocol} "
        f"id {message.id}{recipient}; {format_datetime(utcnow())}"
    )
    return f"Received: {value}\r\n".encode("ascii", "replace")


def added_headers(decision: Decision) -> list[tuple[str, str]]:
    """The headers the rules add (Authentication-Results, tags), each value on one line."""
    return [(name, " ".join(value.split())) for name, value in decision.add_headers]


def prepend_for(runtime: Runtime, message: Message, decision: Decision) -> bytes:
    """What goes before the message when the gateway delivers it: its Received line and the rules' headers."""
    lines = received_header(message, runtime.config.settings.smtp.hostname)
    for name, value in added_headers(decision):
        lines += f"{name}: {value}\r\n".encode("utf-8", "replace")
    return lines


@dataclass(frozen=True)
class Received:
    message: Message
    decision: Decision  # what the rules decided; a tempfail when the message was not stored
    reply: str  # the SMTP reply, formatted, safe to send now


def _looping(message: Message, hops: int) -> Decision:
    # A loop is refused without running the rules, but archived like every other message.
    reason = f"The message has passed through {hops} mail servers; it is looping between them. Ask IT to check the forwarding."
    return Decision(
        "reject",
        [Finding("relay", Action.REJECT, reason, (f"Received headers: {hops}",))],
        reply="554 5.4.6 Too many hops; the message is looping",
    )


async def receive(
    runtime: Runtime,
    envelope: Envelope,
    raw: bytes,
    notes: list[str],
    *,
    owned: Callable[[Decision], Decision] = lambda decision: decision,
    on_accepted: Callable[[], object] | None = None,
) -> Received:
    """Rules, then `accept.store`, then the reply. `owned` narrows the decision to what the gateway
    itself must deliver or hold (the milter hands the delivered recipients back to the MTA)."""
    started = time.monotonic()
    message = Message(
        envelope, raw, direction_of(envelope, runtime.directory), runtime.config.settings.limits, notes=notes
    )
    hops = message.header_count("Received")
    if hops > runtime.config.settings.smtp.max_hops:
        decision = _looping(message, hops)
    else:
        decision = await runtime.pipeline.run(message)
    prepend = prepend_for(runtime, message, decision)
    # Storing is shielded: a client that disconnects now cannot cancel a
    # commit half way; the message is then either fully stored or not at all.
    store = asyncio.ensure_future(accept.store(runtime, message, owned(decision), prepend))
    try:
        await asyncio.shield(store)
    except asyncio.CancelledError:
        store.add_done_callback(functools.partial(_stored_after_hang_up, message, on_accepted))
        raise
    except OSError as exc:
        log.error("message %s not stored: %s", message.id, exc)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return _answer(runtime, message, tempfail(str(exc)), started, reply=NO_SPACE if full else TEMPFAIL)
    except Exception as exc:
        log.exception("message %s not stored", message.id)
        return _answer(runtime, message, tempfail(str(exc)), started, reply=TEMPFAIL)
    runtime.metrics.stored_bytes.inc(message.size)
    if on_accepted is not None:
        on_accepted()
    return _answer(runtime, message, decision, started)


def _stored_after_hang_up(
    message: Message, on_accepted: Callable[[], object] | None, store: asyncio.Future[int]
) -> None:
    """The client left before the reply; the store went on. Say how it ended."""
    if store.cancelled() or store.exception() is not None:
        log.error(
            "message %s not stored after its client hung up: %r",
            message.id,
            None if store.cancelled() else store.exception(),
        )
        return
    log.info(
        "message %s stored after its client hung up; it will be delivered (the client may send it again)",
        message.id,
    )
    if on_accepted is not None:
        on_accepted()


def _answer(
    runtime: Runtime, message: Message, decision: Decision, started: float, reply: str | None = None
) -> Received:
    metrics = runtime.metrics
    reply = reply or decision.reply
    if decision.action in ("deliver", "hold"):
        reply = f"{reply} as {message.id}"
    metrics.messages.labels(direction=message.direction, action=decision.action).inc()
    for finding in decision.findings:
        metrics.findings.labels(policy=finding.policy, mode=finding.mode, action=str(finding.action)).inc()
    metrics.reply_seconds.observe(time.monotonic() - started)
    log.info(
        "%s %s from=<%s> to=%s client=%s: %s%s",
        message.id,
        message.direction,
        message.envelope.mail_from,
        ",".join(message.envelope.rcpt_to),
        message.envelope.client_ip,
        reply,
        f" ({decision.error})" if decision.error else "",
    )
    return Received(message, decision, format_reply(reply))
