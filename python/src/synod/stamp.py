"""Proof-of-work admission stamps (docs/PROTOCOL.md §16).

A space may ask proposers whose trust in a domain is below its
``admission_trust_below`` to carry a ``stamp``: a nonce that gives
``SHA-256("synod/stamp/v1" || base || be64(nonce))`` at least
``admission_difficulty`` leading zero bits, where ``base`` is the proposal's
id as it would be without the stamp. :class:`synod.Client` mints one when
the space asks it; these functions are for building messages by hand.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from .wire import signed_bytes

__all__ = ["STAMP_DOMAIN", "MAX_STAMP_NONCE", "stamp_base", "stamp_hash", "leading_zero_bits", "meets", "mint"]

STAMP_DOMAIN = b"synod/stamp/v1"
#: The largest nonce: a JSON integer every implementation reads exactly.
MAX_STAMP_NONCE = 2**53 - 1


def stamp_base(signer: str, body: Mapping[str, Any]) -> bytes:
    """The digest a stamp is bound to: the proposal's id without its stamp
    (the body must already hold ``space`` and ``created_at``)."""
    plain = {k: v for k, v in body.items() if k != "stamp"}
    return hashlib.sha256(signed_bytes("proposal", plain, signer)).digest()


def stamp_hash(base: bytes, nonce: int) -> bytes:
    return hashlib.sha256(STAMP_DOMAIN + base + nonce.to_bytes(8, "big")).digest()


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def meets(base: bytes, nonce: int, difficulty: int) -> bool:
    return 0 <= nonce <= MAX_STAMP_NONCE and leading_zero_bits(stamp_hash(base, nonce)) >= difficulty


def mint(signer: str, body: Mapping[str, Any], difficulty: int) -> int:
    """The first nonce from 0 that stamps ``body`` for ``signer`` at
    ``difficulty`` bits: 2**difficulty hashes on average."""
    prefix = hashlib.sha256(STAMP_DOMAIN + stamp_base(signer, body))
    full, rest = divmod(difficulty, 8)
    for nonce in range(MAX_STAMP_NONCE + 1):
        h = prefix.copy()
        h.update(nonce.to_bytes(8, "big"))
        digest = h.digest()
        # Whole zero bytes first, then the bits of the next byte.
        if digest[:full] == bytes(full) and (rest == 0 or digest[full] >> (8 - rest) == 0):
            return nonce
    raise ValueError("no stamp exists")  # pragma: no cover - probability below e**-8192
