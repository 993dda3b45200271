"""Agent keys: Ed25519 key pairs named by ``did:key`` (docs/PROTOCOL.md §2.2).

Key files use the format of the Rust CLI (``synod keygen``)::

    {
      "did": "did:key:z6Mk...",
      "seed": "<32 bytes, base64url without padding>"
    }

written with mode 0600. A key written here loads in ``synod`` and the other
way round. Reviewer tokens (``synod reviewer add``) stand for a key too:
``seed = SHA-256("synod/reviewer/v1" ‖ token)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Union

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "Keypair",
    "KeyFileError",
    "DidError",
    "did_from_public_key",
    "public_key_from_did",
    "key_dir",
    "named_key_path",
    "REVIEWER_TOKEN_PREFIX",
    "new_reviewer_token",
    "reviewer_keypair",
    "b64url_encode",
    "b64url_decode",
]

PathLike = Union[str, "os.PathLike[str]"]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_MULTICODEC_ED25519 = b"\xed\x01"
_DID_PREFIX = "did:key:z"
#: Longest string accepted as a did:key (PROTOCOL §2.2 rule 1).
MAX_DID_BYTES = 64

#: Prefix of every reviewer token.
REVIEWER_TOKEN_PREFIX = "synod_rt_"
_REVIEWER_DOMAIN = b"synod/reviewer/v1"


class DidError(ValueError):
    """A string that is not an Ed25519 ``did:key``."""


class KeyFileError(ValueError):
    """A key file that cannot be read or written."""


# --- base58btc and base64url ------------------------------------------------


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise DidError(f"{c!r} is not a base58btc character")
        n = n * 58 + digit
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + body


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: no ``=``, no stray characters, and
    the unused low bits of the last character must be zero."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url (unused bits set)")
    return data


# --- Edwards25519: the key checks and the signature rule ----------------------

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
#: The order of the prime-order subgroup.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493

_Point = tuple[int, int, int, int]
_IDENTITY: _Point = (0, 1, 1, 0)


def _decompress(encoded: bytes) -> _Point | None:
    """The point of a *canonical* encoding (y < p; x = 0 only with the sign
    bit clear), in extended coordinates; None if the bytes are not one."""
    if len(encoded) != 32:
        return None
    y_int = int.from_bytes(encoded, "little")
    sign = y_int >> 255
    y = y_int & ((1 << 255) - 1)
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    vx2 = (v * x * x) % _P
    if vx2 == u:
        pass
    elif vx2 == (-u) % _P:
        x = (x * _SQRT_M1) % _P
    else:
        return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = (-x) % _P
    return (x, y, 1, (x * y) % _P)


def _add(p1: _Point, p2: _Point) -> _Point:
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(point: _Point) -> _Point:
    x1, y1, z1, _ = point
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = (a + b) % _P
    e = (h - (x1 + y1) * (x1 + y1)) % _P
    g = (a - b) % _P
    f = (c + g) % _P
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(n: int, point: _Point) -> _Point:
    result = _IDENTITY
    while n:
        if n & 1:
            result = _add(result, point)
        point = _double(point)
        n >>= 1
    return result


def _negate(point: _Point) -> _Point:
    x, y, z, t = point
    return ((-x) % _P, y, z, (-t) % _P)


def _is_identity(point: _Point) -> bool:
    x, y, z, _ = point
    return x % _P == 0 and (y - z) % _P == 0


def _times_8_is_identity(point: _Point) -> bool:
    for _ in range(3):
        point = _double(point)
    return _is_identity(point)


_BASE = _decompress(bytes.fromhex("58" + "66" * 31))


def _is_small_order(encoded: bytes) -> bool:
    """True if the bytes encode a point of small order (its 8-multiple is
    the identity)."""
    point = _decompress(encoded)
    return point is not None and _times_8_is_identity(point)


def is_valid_point(encoded: bytes) -> bool:
    """Whether 32 bytes are an acceptable public key (PROTOCOL §2.2 rule 4):
    the canonical encoding of a curve point that is not of small order."""
    point = _decompress(encoded)
    return point is not None and not _times_8_is_identity(point)


def verify_strict(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """The signature rule of PROTOCOL §2.3: canonical ``S``; ``R`` and the key
    canonical and not of small order; the cofactored equation
    ``[8]([S]B - [k]A - R) = identity``.

    OpenSSL (through ``cryptography``) checks the cofactorless equation, which
    implies the cofactored one, so it settles every honest signature quickly;
    only a signature it refuses is checked again by the cofactored equation
    in plain integer arithmetic (slow, and only ever reached by invalid or
    deliberately crafted signatures)."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    r_bytes, s_bytes = signature[:32], signature[32:]
    s = int.from_bytes(s_bytes, "little")
    if s >= GROUP_ORDER:
        return False
    a = _decompress(public_key)
    r = _decompress(r_bytes)
    if a is None or r is None or _times_8_is_identity(a) or _times_8_is_identity(r):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except Exception:  # InvalidSignature, or a key OpenSSL refuses
        pass
    assert _BASE is not None
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little") % GROUP_ORDER
    residual = _add(_add(_multiply(s, _BASE), _negate(_multiply(k, a))), _negate(r))
    return _times_8_is_identity(residual)


# --- did:key ---------------------------------------------------------------


def did_from_public_key(public_key: bytes) -> str:
    """``did:key:z`` ‖ base58btc(0xed 0x01 ‖ key)."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _DID_PREFIX + _b58encode(_MULTICODEC_ED25519 + public_key)


def public_key_from_did(did: str) -> bytes:
    """The 32-byte public key a did:key names, checked as PROTOCOL §2.2 says."""
    if len(did.encode("utf-8")) > MAX_DID_BYTES or not did.startswith(_DID_PREFIX):
        raise DidError(f"not an Ed25519 did:key: {did[:MAX_DID_BYTES]!r}")
    raw = _b58decode(did[len(_DID_PREFIX) :])
    if len(raw) != 34 or raw[:2] != _MULTICODEC_ED25519:
        raise DidError(f"not an Ed25519 did:key: {did!r}")
    key = raw[2:]
    if not is_valid_point(key):
        raise DidError("did:key holds an invalid Ed25519 public key")
    return key


# --- key pairs -------------------------------------------------------------


class Keypair:
    """An agent's Ed25519 key. The 32-byte seed is the private key."""

    __slots__ = ("_private", "_seed", "public_key", "did")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._seed = bytes(seed)
        self._private = Ed25519PrivateKey.from_private_bytes(self._seed)
        #: The raw 32-byte public key.
        self.public_key: bytes = self._private.public_key().public_bytes_raw()
        #: The agent id.
        self.did: str = did_from_public_key(self.public_key)

    @classmethod
    def generate(cls) -> Keypair:
        """A fresh key from the operating system's random source."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_seed_hex(cls, seed: str) -> Keypair:
        return cls(bytes.fromhex(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte seed (the private key): keep it secret."""
        return self._seed

    def sign(self, data: bytes) -> bytes:
        """Pure Ed25519 signature (64 bytes) of ``data``."""
        return self._private.sign(data)

    # Key files -------------------------------------------------------------

    def to_json(self) -> str:
        """The key file's text, as ``synod keygen`` writes it."""
        text = json.dumps(
            {"did": self.did, "seed": b64url_encode(self._seed)}, indent=2
        )
        return text + "\n"

    def save(self, path: PathLike, *, force: bool = False) -> Path:
        """Writes the key file (mode 0600), refusing to replace an existing
        file unless ``force``. Creates missing parent folders."""
        target = Path(path)
        if target.exists() and not force:
            raise KeyFileError(f"{target} already exists; pass force=True to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(target, flags, 0o600)
        try:
            # The mode above applies only when the file is created.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                fd = -1
                out.write(self.to_json())
                out.flush()
                os.fsync(out.fileno())
        finally:
            if fd >= 0:
                os.close(fd)
        return target

    @classmethod
    def from_json(cls, text: str, *, source: str = "key file") -> Keypair:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise KeyFileError(f"{source} is not a synod key file: {e}") from None
        if not isinstance(data, dict) or set(data) != {"did", "seed"}:
            raise KeyFileError(f"{source} is not a synod key file: expected exactly did and seed")
        did, seed_text = data["did"], data["seed"]
        if not isinstance(did, str) or not isinstance(seed_text, str):
            raise KeyFileError(f"{source} is not a synod key file: did and seed are strings")
        try:
            seed = b64url_decode(seed_text)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise KeyFileError(f"{source}: seed must be 32 bytes of unpadded base64url")
        key = cls(seed)
        if key.did != did:
            raise KeyFileError(f"{source}: the did does not match the seed")
        return key

    @classmethod
    def load(cls, path: PathLike) -> Keypair:
        """Reads a key file, checking that its did matches its seed."""
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except OSError as e:
            raise KeyFileError(f"reading key {target}: {e}") from None
        return cls.from_json(text, source=str(target))

    @classmethod
    def load_named(cls, name: str = "default") -> Keypair:
        """A named key of the config directory, as ``synod --as NAME`` reads it."""
        return cls.load(named_key_path(name))

    def __repr__(self) -> str:
        return f"Keypair({self.did})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keypair) and other._seed == self._seed

    def __hash__(self) -> int:
        return hash(self.did)


def key_dir() -> Path:
    """Where named keys live, as for the CLI: ``$SYNOD_CONFIG_DIR/keys``, else
    ``$XDG_CONFIG_HOME/synod/keys``, else ``~/.config/synod/keys``."""
    if os.environ.get("SYNOD_CONFIG_DIR"):
        return Path(os.environ["SYNOD_CONFIG_DIR"]) / "keys"
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]) / "synod" / "keys"
    return Path.home() / ".config" / "synod" / "keys"


_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def named_key_path(name: str) -> Path:
    """The file of a named key: letters, digits, ``_``, ``-``, ``.``; not
    starting with a dot."""
    if not _KEY_NAME.fullmatch(name) or name.startswith("."):
        raise KeyFileError(f"key name {name!r} must be letters, digits, '_', '-' or '.'")
    return key_dir() / f"{name}.json"


def new_reviewer_token() -> str:
    """A new reviewer token: the prefix and 32 random bytes in base64url."""
    return REVIEWER_TOKEN_PREFIX + b64url_encode(secrets.token_bytes(32))


_AGENT_TOKEN_DOMAIN = b"synod/agent-token/v1"


def agent_keypair(token: str) -> Keypair:
    """The agent key an MCP agent token (``synod agent token``) stands for:
    ``seed = SHA-256("synod/agent-token/v1" ‖ token)``. Whoever holds the
    token is that agent; keep it secret like a key file."""
    token = token.strip()
    secret = token[len("synod_at_") :] if token.startswith("synod_at_") else ""
    if len(secret) != 64 or any(c not in "0123456789abcdef" for c in secret):
        raise ValueError("not an agent token (synod_at_ and 64 lowercase hex characters)")
    return Keypair(hashlib.sha256(_AGENT_TOKEN_DOMAIN + token.encode("utf-8")).digest())


def reviewer_keypair(token: str) -> Keypair:
    """The key a reviewer token stands for:
    ``seed = SHA-256("synod/reviewer/v1" ‖ token)``."""
    if not token.startswith(REVIEWER_TOKEN_PREFIX):
        raise ValueError("not a reviewer token")
    try:
        secret = b64url_decode(token[len(REVIEWER_TOKEN_PREFIX) :])
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise ValueError("not a reviewer token")
    return Keypair(hashlib.sha256(_REVIEWER_DOMAIN + token.encode("utf-8")).digest())
