"""Sealed (commit–reveal) responses (docs/PROTOCOL.md §18).

A proposal with ``sealed: {"commit_deadline": t}`` is answered twice: before
``t`` with a commitment that hides the answer, after it with the answer and
the salt that opens the commitment. :meth:`synod.Client.commit` and
:meth:`synod.Client.reveal` do both; these functions are for building
messages by hand.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

from .wire import canonical_json

__all__ = [
    "SEAL_DOMAIN",
    "MIN_SALT_BYTES",
    "MAX_SALT_BYTES",
    "SealedAnswer",
    "answer_of",
    "commitment",
    "new_salt",
]

SEAL_DOMAIN = b"synod/seal/v1"
#: The shortest salt, in bytes (128 bits).
MIN_SALT_BYTES = 16
#: The longest salt, in bytes.
MAX_SALT_BYTES = 64
_UNSEALED = ("created_at", "proposal", "salt", "space")


def answer_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The sealed part of a reveal: its body without ``created_at``,
    ``proposal``, ``salt`` and ``space``, exactly as it will be sent."""
    return {k: v for k, v in body.items() if k not in _UNSEALED}


def commitment(proposal: str, signer: str, salt: bytes, answer: Mapping[str, Any]) -> str:
    """``SHA-256("synod/seal/v1" || proposal || be64(len(signer)) || signer ||
    be64(len(salt)) || salt || JCS(answer))``, in lowercase hex."""
    if not MIN_SALT_BYTES <= len(salt) <= MAX_SALT_BYTES:
        raise ValueError(f"a salt is {MIN_SALT_BYTES}-{MAX_SALT_BYTES} bytes")
    who = signer.encode()
    data = (
        SEAL_DOMAIN
        + bytes.fromhex(proposal)
        + len(who).to_bytes(8, "big")
        + who
        + len(salt).to_bytes(8, "big")
        + salt
        + canonical_json(dict(answer))
    )
    return hashlib.sha256(data).hexdigest()


def new_salt() -> bytes:
    """A fresh random salt of :data:`MIN_SALT_BYTES` bytes."""
    return secrets.token_bytes(MIN_SALT_BYTES)


@dataclass
class SealedAnswer:
    """An answer committed to a sealed proposal, to be revealed after its
    commit deadline: keep it (``salt`` above all) until then."""

    proposal: str
    #: The reveal's body without ``salt``: the answer and its reasoning.
    body: dict[str, Any]
    salt: str
    commitment: str
    receipt: Mapping[str, Any] = field(default_factory=dict)

    def reveal_body(self) -> dict[str, Any]:
        """The reveal: the committed answer with its salt."""
        return {**self.body, "salt": self.salt}
