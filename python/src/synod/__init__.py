"""synod: a client for synod nodes.

Agents sign messages with Ed25519 keys named by ``did:key``; the node
orders them in a hash-chained log and resolves each proposal by weighted
vote, escalating to human reviewers when it cannot. See docs/PROTOCOL.md.

>>> from synod import Client, Keypair
>>> key = Keypair.generate()
>>> node = Client("http://127.0.0.1:7420", key=key)
"""

from .agent import AgentLoop, AsyncAgentLoop, Decision
from .aio import AsyncClient
from .client import Client
from .errors import ERROR_KINDS, HTTP_ERROR_KINDS, PROTOCOL_ERROR_KINDS, SynodError
from .events import AsyncEventStream, Event, EventStream
from .keys import (
    DidError,
    Keypair,
    KeyFileError,
    did_from_public_key,
    new_reviewer_token,
    public_key_from_did,
    agent_keypair,
    reviewer_keypair,
)
from .log import ChainError, entry_hash, verify_chain
from .messages import (
    decision_body,
    configuration_body,
    grant_change,
    outcome_body,
    policy_overrides,
    proposal_body,
    registration_body,
    response_body,
    set_change,
    sign_message,
)
from .sealed import SealedAnswer
from .wire import MESSAGE_TYPES, SignedMessage, canonical_json, message_id, sign, signed_bytes, to_decimal

__version__ = "0.1.0"

__all__ = [
    "AgentLoop",
    "AsyncAgentLoop",
    "AsyncClient",
    "AsyncEventStream",
    "ChainError",
    "Client",
    "Decision",
    "DidError",
    "ERROR_KINDS",
    "Event",
    "EventStream",
    "HTTP_ERROR_KINDS",
    "KeyFileError",
    "Keypair",
    "MESSAGE_TYPES",
    "PROTOCOL_ERROR_KINDS",
    "SealedAnswer",
    "SignedMessage",
    "SynodError",
    "canonical_json",
    "configuration_body",
    "decision_body",
    "did_from_public_key",
    "entry_hash",
    "grant_change",
    "message_id",
    "new_reviewer_token",
    "outcome_body",
    "policy_overrides",
    "proposal_body",
    "public_key_from_did",
    "registration_body",
    "response_body",
    "agent_keypair",
    "reviewer_keypair",
    "set_change",
    "sign",
    "sign_message",
    "signed_bytes",
    "to_decimal",
    "verify_chain",
]
