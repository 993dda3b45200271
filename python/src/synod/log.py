"""The hash-chained log (docs/PROTOCOL.md §10): entry hashes and a check of
an export's chain and signatures. Re-deriving the state (``synod audit
verify``) is not done here."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

from .keys import b64url_decode
from .wire import SignedMessage

__all__ = ["entry_hash", "ChainError", "verify_chain", "ZERO_HASH"]

ZERO_HASH = "0" * 64
_DOMAIN = b"synod/entry/v1"


class ChainError(ValueError):
    """An export line whose hash, link or signature is wrong."""


def entry_hash(index: int, time: int, prev: str, message: Mapping[str, Any] | SignedMessage | None) -> str:
    """``SHA-256("synod/entry/v1" ‖ be64(index) ‖ be64(time) ‖ prev ‖ kind ‖
    commitment)`` with ``commitment = SHA-256(signed_bytes ‖ signature)``; a
    tick (no message) has kind 0 and no commitment."""
    data = _DOMAIN + index.to_bytes(8, "big") + time.to_bytes(8, "big") + bytes.fromhex(prev)
    if message is None:
        return hashlib.sha256(data + b"\x00").hexdigest()
    signed = message if isinstance(message, SignedMessage) else SignedMessage.from_dict(message)
    commitment = hashlib.sha256(signed.signed_bytes + b64url_decode(signed.signature)).digest()
    return hashlib.sha256(data + b"\x01" + commitment).hexdigest()


def verify_chain(lines: Iterable[Mapping[str, Any]], *, prev: str = ZERO_HASH, next_index: int = 0) -> str:
    """Checks export lines (``Client.log()``): consecutive indexes from
    ``next_index``, each ``prev`` the hash before it, each ``hash`` recomputed,
    time never going back, every message's signature. Returns the last hash
    (the head). Raises :class:`ChainError`."""
    last_time = -1
    for line in lines:
        index = line["index"]
        if index != next_index:
            raise ChainError(f"entry {index}: expected index {next_index}")
        if line["prev"] != prev:
            raise ChainError(f"entry {index}: prev does not link to the entry before")
        if line["time"] < last_time:
            raise ChainError(f"entry {index}: log time goes back")
        message = line["message"]
        if message is not None and not SignedMessage.from_dict(message).verify():
            raise ChainError(f"entry {index}: bad signature")
        computed = entry_hash(index, line["time"], line["prev"], message)
        if computed != line["hash"]:
            raise ChainError(f"entry {index}: hash mismatch")
        prev, next_index, last_time = computed, index + 1, line["time"]
    return prev
