"""Every rule the gateway knows, in the order they run.

Explicit on purpose: adding a rule means adding its module and one line here.
`inspection` runs last so it sees the problems every other rule's views met.
"""

from __future__ import annotations

from policies.anonymous_sender import AnonymousSender
from policies.authentication import Authentication
from policies.base import Policy
from policies.broadcast import Broadcast
from policies.chain_letters import ChainLetters
from policies.confidential import Confidential
from policies.gateway_headers import GatewayHeaders
from policies.impersonation import Impersonation
from policies.inspection import Inspection
from policies.language import Language
from policies.sender_identity import SenderIdentity
from policies.size import SizeLimit
from policies.software import Software
from policies.solicitation import Solicitation
from policies.unknown_sender import UnknownSender
from policies.virus import Virus
from policies.webmail_forwarding import WebmailForwarding

POLICIES: tuple[type[Policy], ...] = (
    SizeLimit,
    GatewayHeaders,
    Broadcast,  # first of the holds: its approval hold wins for its recipients; approval hands on to IT review when other rules asked for it
    Authentication,  # early: later rules (unknown_sender) read its results; a forged sender is refused first
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
