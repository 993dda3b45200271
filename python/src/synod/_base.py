"""What the sync and async clients share: paths, message building and
answer decoding. No input or output happens here."""

from __future__ import annotations

import json
import time
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from .errors import SynodError
from .keys import Keypair
from .messages import sign_message
from .wire import MessageType, SignedMessage

DEFAULT_TIMEOUT = 30.0
#: Tries for a configuration change whose sequence number another admin took.
CONFIG_ATTEMPTS = 3


def local_ms() -> int:
    return time.time_ns() // 1_000_000


def segment(value: str) -> str:
    """A path segment, escaped so an id can never change the route."""
    return quote(value, safe="")


def decode(response: httpx.Response) -> Any:
    """The JSON of a successful answer, or :class:`SynodError`."""
    if response.status_code >= 400:
        raise error_of(response.status_code, response.text)
    try:
        return response.json()
    except ValueError:
        raise SynodError("http_error", f"the node's answer is not JSON: {response.text[:200]!r}", response.status_code) from None


def error_of(status: int, text: str) -> SynodError:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        message = value.get("message")
        return SynodError(value["error"], message if isinstance(message, str) else json.dumps(value), status)
    return SynodError("http_error", text[:500] or f"HTTP {status}", status)


def submit_path(message: SignedMessage) -> str:
    """Where a message of each type is posted."""
    kind = message.type
    if kind == "registration":
        return "/v1/agents"
    if kind == "configuration":
        return "/v1/config"
    if kind == "proposal":
        return "/v1/proposals"
    proposal = message.body.get("proposal")
    if not isinstance(proposal, str):
        raise ValueError(f"a {kind} message names its proposal")
    if kind == "response":
        return f"/v1/proposals/{segment(proposal)}/responses"
    if kind == "outcome":
        return f"/v1/proposals/{segment(proposal)}/outcome"
    if kind == "decision":
        return f"/v1/escalations/{segment(proposal)}/decisions"
    raise ValueError(f"unknown message type {kind!r}")


def params(**values: Any) -> dict[str, Any]:
    """Query parameters without the ``None`` ones; booleans as the node reads them."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


class ClientBase:
    """State shared by :class:`synod.Client` and :class:`synod.AsyncClient`:
    the signing key, the space id and the node's clock."""

    def __init__(self, base_url: str, key: Keypair | None) -> None:
        self.base_url = base_url.rstrip("/")
        #: The key messages are signed with unless a call names another.
        self.key = key
        self._space_id: str | None = None
        # node clock − local clock, in ms, measured at the last /v1/space.
        self._clock_offset: int | None = None

    def _learn_space(self, info: Mapping[str, Any], sent_at: int, received_at: int) -> None:
        self._space_id = str(info["space"])
        node_time = int(info["time"])
        self._clock_offset = node_time - (sent_at + received_at) // 2

    def _node_now(self) -> int:
        assert self._clock_offset is not None
        return local_ms() + self._clock_offset

    def _signer(self, key: Keypair | None) -> Keypair:
        chosen = key or self.key
        if chosen is None:
            raise ValueError("this call signs a message: give the client a key (Client(url, key=...)) or pass key=")
        return chosen

    def _sign_known(
        self,
        kind: MessageType,
        body: Mapping[str, Any],
        key: Keypair | None,
        created_at: int | None,
        space: str | None,
    ) -> SignedMessage:
        assert self._space_id is not None
        return sign_message(
            kind,
            body,
            self._signer(key),
            space=space if space is not None else self._space_id,
            created_at=created_at if created_at is not None else self._node_now(),
        )
