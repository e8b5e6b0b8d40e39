"""Every rule the gateway knows, in the order they run.

Explicit on purpose: adding a rule means adding its module and one line here.
`inspection` runs last so it sees the problems every other rule's views met.
A rule's `requires` moves the rules it reads results from ahead of it
(`run_order`); otherwise this order stands.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies.base import Policy
from policies.rules.anonymous_sender import AnonymousSender
from policies.rules.authentication import Authentication
from policies.rules.broadcast import Broadcast
from policies.rules.chain_letters import ChainLetters
from policies.rules.confidential import Confidential
from policies.rules.gateway_headers import GatewayHeaders
from policies.rules.impersonation import Impersonation
from policies.rules.inspection import Inspection
from policies.rules.language import Language
from policies.rules.sender_identity import SenderIdentity
from policies.rules.size import SizeLimit
from policies.rules.software import Software
from policies.rules.solicitation import Solicitation
from policies.rules.unknown_sender import UnknownSender
from policies.rules.virus import Virus
from policies.rules.webmail_forwarding import WebmailForwarding

POLICIES: tuple[type[Policy], ...] = (
    SizeLimit,
    GatewayHeaders,
    Broadcast,  # first of the holds: its approval hold wins for its recipients; approval hands on to IT review when other rules asked for it
    Authentication,  # early: a forged sender is refused before the content rules spend time on it
    SenderIdentity,
    Impersonation,
    AnonymousSender,
    Confidential,
    ChainLetters,
    Language,
    Solicitation,
    WebmailForwarding,
    Virus,  # a virus rejects whoever the sender is
    Software,
    UnknownSender,  # holds per recipient, after the rules that refuse the whole message
    Inspection,
)


def run_order(policies: Sequence[type[Policy]]) -> list[type[Policy]]:
    """The rules in registry order, except that each runs after the rules it `requires`."""
    by_name = {policy.name: policy for policy in policies}
    ordered: list[type[Policy]] = []
    visiting: list[str] = []

    def place(policy: type[Policy]) -> None:
        if policy in ordered:
            return
        if policy.name in visiting:
            raise ValueError(f"rules require each other in a cycle: {' -> '.join([*visiting, policy.name])}")
        visiting.append(policy.name)
        for name in policy.requires:
            if name not in by_name:
                raise ValueError(f"rule {policy.name} requires {name!r}, which is not a registered rule")
            place(by_name[name])
        visiting.pop()
        ordered.append(policy)

    for policy in policies:
        place(policy)
    return ordered


RUN_ORDER: tuple[type[Policy], ...] = tuple(run_order(POLICIES))
