"""The error a node answers with: ``{"error": kind, "message": text}``."""

from __future__ import annotations

__all__ = ["SynodError", "PROTOCOL_ERROR_KINDS", "HTTP_ERROR_KINDS", "ERROR_KINDS"]

#: The protocol's refusal kinds (docs/PROTOCOL.md §9).
PROTOCOL_ERROR_KINDS: tuple[str, ...] = (
    "malformed",
    "bad_signature",
    "unknown_agent",
    "not_eligible",
    "duplicate",
    "proposal_closed",
    "out_of_range",
    "too_large",
    "unknown_proposal",
    "wrong_role",
    "policy_violation",
    "bad_deadline",
    "clock_skew",
    "wrong_space",
    "invalid_state",
    "insufficient_work",
    "wrong_phase",
    "bad_reveal",
)

#: Kinds the HTTP API adds to the protocol's (crates/synod-node/src/openapi.json).
HTTP_ERROR_KINDS: tuple[str, ...] = (
    "not_found",
    "unauthorized",
    "unavailable",
    "method_not_allowed",
    "wrong_host",
)

ERROR_KINDS: tuple[str, ...] = PROTOCOL_ERROR_KINDS + HTTP_ERROR_KINDS


class SynodError(Exception):
    """A refusal from the node.

    ``kind`` is the wire name (``duplicate``, ``not_eligible``, …; see
    :data:`ERROR_KINDS`), ``message`` the node's explanation (for people, not
    for matching), ``status`` the HTTP status. An answer that is not the
    node's JSON error (a proxy's page, say) has kind ``http_error``.
    """

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{kind}: {message}" + (f" (HTTP {status})" if status is not None else ""))
        self.kind = kind
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"SynodError(kind={self.kind!r}, message={self.message!r}, status={self.status!r})"
