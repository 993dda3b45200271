"""Bodies of every message type (docs/PROTOCOL.md §4), without the common
``space`` and ``created_at`` members, which :func:`sign_message` adds.

The builders only shape the JSON: every rule is checked by the node, so a
wrong value comes back as a :class:`synod.SynodError` of the right kind.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

from .keys import Keypair
from .wire import DecimalLike, MessageType, SignedMessage, sign, to_decimal

__all__ = [
    "Stance",
    "Stakes",
    "HumanDecision",
    "OutcomeResult",
    "Role",
    "registration_body",
    "proposal_body",
    "response_body",
    "belief_response_body",
    "distribution",
    "outcome_body",
    "decision_body",
    "configuration_body",
    "set_change",
    "grant_change",
    "policy_overrides",
    "sign_message",
    "UNSET",
]

Stance = Literal["endorse", "challenge", "abstain"]
Stakes = Literal["low", "medium", "high", "critical"]
HumanDecision = Literal["approve", "reject"]
OutcomeResult = Literal["success", "failure"]
Role = Literal["agent", "reviewer", "oracle", "admin"]
Method = Literal["vote", "belief", "open", "stake", "hierarchy"]
Pool = Literal["log", "linear"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marks an argument that was not given (``payload=None`` is a JSON null).
UNSET: Any = _Unset()


def _authorities(values: Mapping[str, DecimalLike] | None) -> dict[str, str]:
    return {pattern: to_decimal(v) for pattern, v in (values or {}).items()}


def distribution(probabilities: Mapping[str, DecimalLike]) -> dict[str, str]:
    """A belief distribution (§15): a probability per option as a decimal
    string. The node checks that it names every option once and sums to
    exactly 1."""
    return {option: to_decimal(p) for option, p in probabilities.items()}


def registration_body(
    *,
    seq: int,
    name: str,
    vendor: str | None = None,
    model: str | None = None,
    authorities: Mapping[str, DecimalLike] | None = None,
    roles: Sequence[str] = (),
) -> dict[str, Any]:
    """§4.3. ``authorities`` maps domain patterns to declared authority; the
    roles asked for are recorded but grant nothing."""
    body: dict[str, Any] = {"seq": seq, "name": name, "authorities": _authorities(authorities), "roles": list(roles)}
    if vendor is not None:
        body["vendor"] = vendor
    if model is not None:
        body["model"] = model
    return body


def policy_overrides(
    *,
    approve_margin: DecimalLike | None = None,
    reject_margin: DecimalLike | None = None,
    approve_confidence: DecimalLike | None = None,
    reject_confidence: DecimalLike | None = None,
    quorum: DecimalLike | None = None,
    min_confidence: DecimalLike | None = None,
    human_required: bool | None = None,
    proposer_counts: bool | None = None,
    reviewers_required: int | None = None,
    pool_threshold: DecimalLike | None = None,
) -> dict[str, Any]:
    """A proposal's ``policy``: overrides that may only tighten (§5.2). The
    margins and ``min_confidence`` apply under linear weighting, the decision
    confidences under log-odds weighting (the default), ``pool_threshold``
    to belief proposals (§15); the space's weighting, pool and floor cannot
    be overridden."""
    out: dict[str, Any] = {}
    for name, value in (
        ("approve_margin", approve_margin),
        ("reject_margin", reject_margin),
        ("approve_confidence", approve_confidence),
        ("reject_confidence", reject_confidence),
        ("quorum", quorum),
        ("min_confidence", min_confidence),
        ("pool_threshold", pool_threshold),
    ):
        if value is not None:
            out[name] = to_decimal(value)
    if human_required is not None:
        out["human_required"] = human_required
    if proposer_counts is not None:
        out["proposer_counts"] = proposer_counts
    if reviewers_required is not None:
        out["reviewers_required"] = reviewers_required
    return out


def proposal_body(
    *,
    domain: str,
    kind: str,
    summary: str,
    confidence: DecimalLike,
    stakes: str,
    deadline: int,
    payload: Any = UNSET,
    policy: Mapping[str, Any] | None = None,
    supersedes: str | None = None,
    options: Sequence[str] | None = None,
    own_distribution: Mapping[str, DecimalLike] | None = None,
    method: str | None = None,
    committee: int | None = None,
    commit_deadline: int | None = None,
    open_tolerance: DecimalLike | None = None,
    open_question: bool = False,
) -> dict[str, Any]:
    """§4.4. ``deadline`` is absolute log time in ms; ``confidence`` is the
    proposer's probability that the action succeeds, in (0, 1]. With
    ``options`` the proposal asks a question instead (belief consensus, §15):
    responses are distributions over the options, and ``own_distribution``
    is the proposer's own. ``method="stake"`` decides it by stake, and
    ``committee`` by a committee of that many members drawn by stake
    (§20). With ``commit_deadline`` (log time in ms, before
    ``deadline``) the responses are sealed (§18): commitments until then,
    reveals after."""
    action: dict[str, Any] = {"kind": kind, "summary": summary}
    if payload is not UNSET:
        action["payload"] = payload
    body: dict[str, Any] = {
        "domain": domain,
        "action": action,
        "confidence": to_decimal(confidence),
        "stakes": stakes,
        "deadline": deadline,
    }
    if policy:
        body["policy"] = dict(policy)
    if supersedes is not None:
        body["supersedes"] = supersedes
    if options is not None:
        body["method"] = "belief"
        body["options"] = list(options)
    if own_distribution is not None:
        body["distribution"] = distribution(own_distribution)
    if method is not None:
        body["method"] = method
    if committee is not None:
        body["committee"] = committee
    if commit_deadline is not None:
        body["sealed"] = {"commit_deadline": commit_deadline}
    if open_question:
        body["method"] = "open"
        if open_tolerance is not None:
            body["open"] = {"tolerance": to_decimal(open_tolerance)}
    return body


def response_body(
    *, proposal: str, stance: str, confidence: DecimalLike, reasoning: str = ""
) -> dict[str, Any]:
    """§4.5. ``confidence`` is the responder's probability that its stance is
    right, in [0, 1]; ``reasoning`` is kept in the audit log."""
    return {"proposal": proposal, "stance": stance, "confidence": to_decimal(confidence), "reasoning": reasoning}


def answer_body(*, proposal: str, answer: str, confidence: DecimalLike, reasoning: str = "") -> dict[str, Any]:
    """§4.5, §19: an open question's answer in free text, with the
    responder's probability that it is right."""
    return {"proposal": proposal, "answer": answer, "confidence": to_decimal(confidence), "reasoning": reasoning}


def belief_response_body(
    *, proposal: str, probabilities: Mapping[str, DecimalLike], reasoning: str = ""
) -> dict[str, Any]:
    """§4.5, §15: a belief proposal's answer, a probability per option
    summing to exactly 1 (an abstention is :func:`response_body` with
    ``stance="abstain"``)."""
    return {"proposal": proposal, "distribution": distribution(probabilities), "reasoning": reasoning}


def outcome_body(
    *,
    proposal: str,
    result: str | None = None,
    score: DecimalLike | None = None,
    option: str | None = None,
    answer: str | None = None,
) -> dict[str, Any]:
    """§4.6: exactly one of ``result`` (``success``/``failure``), ``score``
    (a graded outcome in [0, 1]), for a belief proposal ``option`` (the
    option that turned out right) and for an open question ``answer``."""
    if sum(x is not None for x in (result, score, option, answer)) != 1:
        raise ValueError("give exactly one of result, score, option and answer")
    body: dict[str, Any] = {"proposal": proposal}
    if result is not None:
        body["result"] = result
    if score is not None:
        body["score"] = to_decimal(score)
    if option is not None:
        body["option"] = option
    if answer is not None:
        body["answer"] = answer
    return body


def decision_body(
    *, proposal: str, decision: str, note: str = "", option: str | None = None, answer: str | None = None
) -> dict[str, Any]:
    """§4.7: a reviewer's ``approve`` or ``reject`` of an escalated proposal;
    approving a belief proposal names the ``option`` it adopts, approving an
    open question the ``answer``."""
    body: dict[str, Any] = {"proposal": proposal, "decision": decision, "note": note}
    if option is not None:
        body["option"] = option
    if answer is not None:
        body["answer"] = answer
    return body


def set_change(**patch: Any) -> dict[str, Any]:
    """A configuration ``set`` change (§7.0): ``mode="open"``,
    ``trust_prior=0.5``, ``max_deadline_ms=...``, ``policies={...}``. Decimal
    fields given as numbers are written as decimal strings."""
    decimals = {
        "trust_prior",
        "open_authority_cap",
        "open_initial_trust",
        "open_newcomer_cap",
        "trust_learning_rate",
        "admission_trust_below",
    }
    out: dict[str, Any] = {}
    for name, value in patch.items():
        out[name] = to_decimal(value) if name in decimals and value is not None else value
    return {"set": out}


def grant_change(
    agent: str,
    *,
    authorities: Mapping[str, DecimalLike] | None = None,
    roles: Sequence[str] = (),
    stake: int | None = None,
) -> dict[str, Any]:
    """A configuration ``grant`` (§4.8): replaces the agent's granted
    authorities, roles and stake (whole units, §20.1); admits an agent the
    space does not know."""
    grant: dict[str, Any] = {"agent": agent, "authorities": _authorities(authorities), "roles": list(roles)}
    if stake is not None:
        grant["stake"] = stake
    return {"grant": grant}


def configuration_body(*, seq: int, change: Mapping[str, Any]) -> dict[str, Any]:
    """§4.8: ``seq`` 0 creates a space; afterwards above the space's
    configuration sequence number."""
    return {"seq": seq, "change": dict(change)}


def sign_message(
    kind: MessageType, body: Mapping[str, Any], key: Keypair, *, space: str, created_at: int
) -> SignedMessage:
    """Adds ``space`` and ``created_at`` to ``body`` and signs it."""
    full = dict(body)
    full["space"] = space
    full["created_at"] = created_at
    return sign(kind, full, key)
