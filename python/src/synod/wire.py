"""The signed envelope (docs/PROTOCOL.md §2).

``signed_bytes = JCS({"body": body, "signer": did, "type": type})`` (RFC 8785);
the signature is pure Ed25519 over those bytes, base64url without padding;
the message id is ``hex(SHA-256(signed_bytes))``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Mapping, Union, get_args

import rfc8785

from .keys import DidError, Keypair, b64url_decode, b64url_encode, public_key_from_did, verify_strict

__all__ = [
    "MessageType",
    "MESSAGE_TYPES",
    "SignedMessage",
    "signed_bytes",
    "message_id",
    "canonical_json",
    "sign",
    "to_decimal",
    "DecimalLike",
    "MAX_MESSAGE_BYTES",
]

MessageType = Literal["registration", "proposal", "response", "outcome", "decision", "configuration"]
MESSAGE_TYPES: tuple[MessageType, ...] = get_args(MessageType)

#: Largest message a node accepts, in bytes of JSON as received.
MAX_MESSAGE_BYTES = 64 * 1024

#: A decimal for the wire: a string (sent as is), an int, a float (rounded to
#: six places) or a ``decimal.Decimal`` (exact, at most six places).
DecimalLike = Union[str, int, float, Decimal]


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical bytes of a JSON value."""
    return rfc8785.dumps(value)


def signed_bytes(kind: str, body: Mapping[str, Any], signer: str) -> bytes:
    """The bytes a message's signature covers (PROTOCOL §2.3)."""
    return canonical_json({"body": dict(body), "signer": signer, "type": kind})


def message_id(data: bytes) -> str:
    """Lowercase hex SHA-256 of signed bytes: the message (or proposal) id."""
    return hashlib.sha256(data).hexdigest()


def micros(text: str) -> int:
    """A protocol decimal in [0, 1] as an integer count of millionths
    (``"0.25"`` → 250000), exactly."""
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


def to_decimal(value: DecimalLike) -> str:
    """A protocol decimal string (PROTOCOL §2.5, §3.1).

    Strings pass unchanged (the node checks them). Floats are rounded to six
    fractional digits; a ``Decimal`` must already have at most six. The result
    has no exponent and no trailing zeros: ``0.85`` → ``"0.85"``, ``1`` → ``"1"``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("a decimal cannot be a bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a decimal must be finite")
        exact = Decimal(repr(value)).quantize(Decimal("0.000001"))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a decimal must be finite")
        try:
            exact = value.quantize(Decimal("0.000001"))
        except InvalidOperation as e:  # pragma: no cover - huge values
            raise ValueError(f"{value} cannot be a protocol decimal") from e
        if exact != value:
            raise ValueError(f"{value} has more than six fractional digits")
    else:
        raise TypeError(f"cannot make a decimal of {type(value).__name__}")
    text = format(exact, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


@dataclass(frozen=True)
class SignedMessage:
    """A signed envelope: ``{"type", "body", "signer", "signature"}``."""

    type: str
    body: dict[str, Any]
    signer: str
    signature: str

    @property
    def signed_bytes(self) -> bytes:
        return signed_bytes(self.type, self.body, self.signer)

    @property
    def id(self) -> str:
        """The message id; for a proposal, the proposal id."""
        return message_id(self.signed_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "body": self.body, "signer": self.signer, "signature": self.signature}

    def to_bytes(self) -> bytes:
        """The canonical JSON of the whole envelope, as sent and as logged."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, envelope: Mapping[str, Any]) -> SignedMessage:
        """Reads an envelope, checking its shape (not its signature)."""
        if set(envelope) != {"type", "body", "signer", "signature"}:
            raise ValueError("an envelope has exactly type, body, signer and signature")
        kind, body, signer, signature = (
            envelope["type"],
            envelope["body"],
            envelope["signer"],
            envelope["signature"],
        )
        if kind not in MESSAGE_TYPES:
            raise ValueError(f"unknown message type {kind!r}")
        if not isinstance(body, dict) or not isinstance(signer, str) or not isinstance(signature, str):
            raise ValueError("body must be an object, signer and signature strings")
        return cls(type=kind, body=body, signer=signer, signature=signature)

    @classmethod
    def from_json(cls, text: str | bytes) -> SignedMessage:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("an envelope is a JSON object")
        return cls.from_dict(value)

    def verify(self) -> bool:
        """Strict verification of the signature against the signer's did."""
        try:
            key = public_key_from_did(self.signer)
        except DidError:
            return False
        if len(self.signature) != 86:
            return False
        try:
            raw = b64url_decode(self.signature)
        except ValueError:
            return False
        return verify_strict(key, raw, self.signed_bytes)


def sign(kind: MessageType, body: Mapping[str, Any], key: Keypair) -> SignedMessage:
    """Signs ``body`` (already holding ``space`` and ``created_at``) as ``kind``."""
    if kind not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {kind!r}")
    plain = dict(body)
    data = signed_bytes(kind, plain, key.did)
    return SignedMessage(type=kind, body=plain, signer=key.did, signature=b64url_encode(key.sign(data)))
