"""Domains, domain patterns and an agent's authority (docs/PROTOCOL.md §5.0)."""

from __future__ import annotations

import re
from typing import Mapping

from .types import AgentSummary, SpaceConfig

__all__ = ["is_domain", "is_pattern", "pattern_matches", "micros", "authority_in"]

_SEGMENT = re.compile(r"[a-z][a-z0-9_-]*")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?")


def is_domain(text: str) -> bool:
    """One to eight dot-separated segments ``[a-z][a-z0-9_-]*`` of at most 32 bytes."""
    parts = text.split(".")
    return 1 <= len(parts) <= 8 and all(_SEGMENT.fullmatch(p) and len(p) <= 32 for p in parts)


def is_pattern(text: str) -> bool:
    """``*``, a domain, or a domain followed by ``.*``."""
    if text == "*":
        return True
    return is_domain(text[:-2]) if text.endswith(".*") else is_domain(text)


def pattern_matches(pattern: str, domain: str) -> bool:
    """``fraud.*`` matches ``fraud`` and ``fraud.detection``; ``*`` every domain."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        stem = pattern[:-2]
        return domain == stem or domain.startswith(stem + ".")
    return pattern == domain


def _specificity(pattern: str) -> tuple[int, int]:
    if pattern == "*":
        return (0, 0)
    if pattern.endswith(".*"):
        return (pattern[:-2].count(".") + 1, 0)
    return (pattern.count(".") + 1, 1)


def micros(decimal: str) -> int:
    """A protocol decimal in millionths, read exactly (``"0.85"`` → 850000)."""
    if not _DECIMAL.fullmatch(decimal):
        raise ValueError(f"{decimal!r} is not a protocol decimal")
    negative = decimal.startswith("-")
    whole, _, frac = decimal.lstrip("-").partition(".")
    value = int(whole) * 1_000_000 + int((frac + "000000")[:6])
    return -value if negative else value


def _most_specific(authorities: Mapping[str, int], domain: str) -> int:
    best: tuple[tuple[int, int], int] | None = None
    for pattern, value in authorities.items():
        if pattern_matches(pattern, domain):
            rank = _specificity(pattern)
            if best is None or rank > best[0]:
                best = (rank, value)
    return best[1] if best else 0


def authority_in(agent: AgentSummary, domain: str, config: SpaceConfig) -> int:
    """The agent's authority in ``domain``, in millionths, as the space
    computes it now: granted authorities only in a closed space; in an open
    one, declarations too (capped at ``open_authority_cap``) for patterns the
    agent was not granted. The most specific matching pattern wins."""
    granted = {p: micros(v) for p, v in agent["granted_authorities"].items()}
    if config["mode"] == "open":
        cap = micros(config["open_authority_cap"])
        merged = dict(granted)
        for pattern, value in agent["declared_authorities"].items():
            if pattern not in granted:
                merged[pattern] = min(micros(value), cap)
        return _most_specific(merged, domain)
    return _most_specific(granted, domain)
