"""Every rule the gateway knows, in the order they run.

Explicit on purpose: adding a rule means adding its module and one line here.
`inspection` runs last so it sees the problems every other rule's views met.
"""

from __future__ import annotations

from policies.anonymous_sender import AnonymousSender
from policies.base import Policy
from policies.chain_letters import ChainLetters
from policies.confidential import Confidential
from policies.inspection import Inspection
from policies.language import Language
from policies.size import SizeLimit
from policies.solicitation import Solicitation
from policies.webmail_forwarding import WebmailForwarding

POLICIES: tuple[type[Policy], ...] = (
    SizeLimit,
    AnonymousSender,
    Confidential,
    ChainLetters,
    Language,
    Solicitation,
    WebmailForwarding,
    Inspection,
)
