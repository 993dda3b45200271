"""Typed shapes of the node's JSON answers (crates/synod-node/src/api.rs).

They are ``TypedDict``s: the values are the decoded JSON as the node sent it,
so decimals stay exact strings (``"0.85"``) and digests lowercase hex.
"""

from __future__ import annotations

import sys
from typing import Any, Literal, TypedDict, Union

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover
    from typing_extensions import NotRequired

__all__ = [
    "Status",
    "Tally",
    "Policy",
    "SpaceConfig",
    "Head",
    "SpaceInfo",
    "Health",
    "AgentSummary",
    "AgentDetail",
    "AgentList",
    "TrustPoint",
    "Action",
    "ResponseRecord",
    "Closure",
    "OutcomeRecord",
    "Leaning",
    "Electorate",
    "Position",
    "Thresholds",
    "Confidences",
    "ReviewerDecision",
    "Pool",
    "BeliefPackage",
    "DecisionPackage",
    "Cluster",
    "Clusters",
    "SealedInfo",
    "ProposalSummary",
    "Membership",
    "ProposalDetail",
    "ProposalList",
    "Escalation",
    "EscalationList",
    "Effect",
    "Receipt",
    "RegistrationReceipt",
    "ProposalReceipt",
    "ResponseReceipt",
    "DecisionReceipt",
    "LogLine",
    "Envelope",
    "Verdict",
]

Status = Literal[
    "open", "approved", "rejected", "escalated", "approved_by_human", "rejected_by_human", "superseded"
]

#: ``"approved"``, ``"rejected"`` or ``{"escalated": reason}``.
Verdict = Union[str, dict[str, str]]

#: An effect (docs/PROTOCOL.md §10.1): a JSON object tagged by ``type``.
Effect = dict[str, Any]

#: A signed envelope as JSON.
Envelope = dict[str, Any]


class Tally(TypedDict):
    endorse: str
    challenge: str
    voted: str
    potential: str


class Policy(TypedDict):
    weighting: Literal["linear", "log_odds"]
    approve_margin: str
    reject_margin: str
    approve_confidence: str
    reject_confidence: str
    quorum: str
    min_confidence: str
    trust_cap: str
    #: Belief proposals (PROTOCOL §15): the pool, the threshold the leading
    #: option needs, and the floor a zero probability counts as.
    pool: Literal["log", "linear"]
    pool_threshold: str
    pool_floor: str
    human_required: bool
    proposer_counts: bool
    reviewers_required: int


class SpaceConfig(TypedDict):
    mode: Literal["open", "closed"]
    trust_prior: str
    open_authority_cap: str
    open_initial_trust: str
    open_newcomer_cap: str
    trust_learning_rate: str
    policies: dict[str, Policy]
    max_deadline_ms: int
    max_message_age_ms: int
    max_clock_skew_ms: int
    max_open_per_agent: int
    #: Proof-of-work admission (PROTOCOL §16): proposers whose trust in the
    #: domain is below ``admission_trust_below`` stamp their proposals at
    #: ``admission_difficulty`` bits (the clients do it for you).
    admission_difficulty: int
    admission_trust_below: str
    #: Stake (PROTOCOL §20): ``influence`` or ``granted``; committees from
    #: ``min_committee`` (0: none); proposer rounds of ``proposer_round_ms``
    #: (0: off).
    stake: Literal["influence", "granted"]
    min_committee: int
    proposer_round_ms: int
    #: Hierarchies by domain (PROTOCOL §21): ``workers``, ``supervisors``,
    #: ``executive``, ``objection_window_ms``.
    hierarchies: dict[str, dict[str, Any]]


class Head(TypedDict):
    next_index: int
    last_hash: str
    last_time: int


class SpaceInfo(TypedDict):
    space: str
    config: SpaceConfig
    config_seq: int
    head: Head
    #: The node's clock (ms), for ``created_at``.
    time: int
    agents: int
    proposals: int
    state_hash: NotRequired[str]


class Health(TypedDict):
    status: str
    durable_next: NotRequired[int]
    reason: NotRequired[str]


class AgentSummary(TypedDict):
    id: str
    name: str
    vendor: str | None
    model: str | None
    registered: bool
    seq: int
    roles: list[str]
    declared_authorities: dict[str, str]
    granted_authorities: dict[str, str]
    responses: int
    outcomes: int


class TrustPoint(TypedDict):
    time: int
    index: int
    domain: str
    trust: str


class AgentDetail(AgentSummary):
    #: Trust per exact domain earned from outcomes.
    trust: dict[str, str]
    #: Trust in a domain without history.
    trust_prior: str
    trust_history: list[TrustPoint]


class AgentList(TypedDict):
    agents: list[AgentSummary]
    total: int


class Action(TypedDict):
    kind: str
    summary: str
    payload: Any


class ResponseRecord(TypedDict):
    agent: str
    name: str
    #: ``None`` for a belief proposal's distribution.
    stance: str | None
    confidence: str | None
    reasoning: str
    index: int
    #: A belief proposal's answer: a probability per option.
    distribution: NotRequired[dict[str, str]]
    #: An open question's answer, normalised (PROTOCOL §19).
    answer: NotRequired[str]


class Closure(TypedDict):
    verdict: Verdict
    cause: Literal["deadline", "all_responded", "early", "objected"]
    index: int
    time: int


class OutcomeRecord(TypedDict):
    #: A vote's outcome.
    score: NotRequired[str]
    #: A belief proposal's outcome: the option that turned out right.
    option: NotRequired[str]
    #: An open question's outcome: the answer that turned out right.
    answer: NotRequired[str]
    reporter: str
    index: int


class Leaning(TypedDict):
    verdict: Verdict
    final: bool


class Electorate(TypedDict):
    members: int
    pending: int


class Position(TypedDict):
    agent: str
    name: str
    vendor: str | None
    #: Absent for a belief proposal's distribution.
    stance: NotRequired[str]
    confidence: NotRequired[str]
    #: A belief proposal's position, and its total variation distance from
    #: the pool.
    distribution: NotRequired[dict[str, str]]
    divergence: NotRequired[str]
    #: An open question's answer, normalised.
    answer: NotRequired[str]
    authority: str
    trust: str
    weight: str
    reasoning: str
    proposer: bool


class Thresholds(TypedDict):
    quorum_needed: str
    confidence_needed: str
    approve_needed: str
    reject_needed: str
    margin: str


class Confidences(TypedDict):
    endorse: list[str]
    challenge: list[str]
    abstain: list[str]
    histogram: list[int]


class ReviewerDecision(TypedDict):
    reviewer: str
    decision: str
    note: str
    #: A belief proposal's approval: the option it adopts.
    option: NotRequired[str]


class Pool(TypedDict):
    """A belief proposal's pool (PROTOCOL §15.5)."""

    #: The option with the highest pooled probability, if exactly one.
    leader: str | None
    #: Pooled probability per option, floored to millionths.
    pooled: dict[str, str]


class BeliefPackage(TypedDict):
    options: list[str]
    leader: str | None
    pooled: dict[str, str]
    #: The option adopted, by the pool or by reviewers.
    choice: str | None


class DecisionPackage(TypedDict):
    """Everything a human needs to decide a proposal (PROTOCOL §7.2)."""

    id: str
    proposal: Envelope
    status: Status
    reason: str | None
    cause: str | None
    policy: Policy
    positions: list[Position]
    tally: Tally
    thresholds: Thresholds
    confidences: Confidences
    silent: list[str]
    decisions: list[ReviewerDecision]
    #: Belief proposals only.
    belief: NotRequired[BeliefPackage]
    #: Hierarchy proposals only (PROTOCOL §21): the executive's decision and
    #: the workers' objections.
    hierarchy: NotRequired[dict[str, Any]]


class Cluster(TypedDict):
    """Equivalent answers of an open question (PROTOCOL §19.2)."""

    answer: str
    answers: list[str]
    weight: str


class Clusters(TypedDict):
    """An open question's clusters, heaviest first (PROTOCOL §19.5)."""

    leader: str | None
    agreement: str
    clusters: list[Cluster]


class SealedInfo(TypedDict):
    """A sealed proposal's phase and who committed (PROTOCOL §18): never a
    stance."""

    commit_deadline: int
    phase: Literal["commit", "reveal"]
    committed: list[str]
    unrevealed: list[str]


class ProposalSummary(TypedDict):
    id: str
    status: Status
    domain: str
    stakes: str
    proposer: str
    kind: str
    summary: str
    deadline: int
    entered_index: int
    tally: Tally
    reason: str | None
    method: Literal["vote", "belief", "open", "stake", "hierarchy"]
    #: A proposal decided by a committee drawn by stake: its size (§20.3).
    committee: NotRequired[int]
    #: Belief proposals only: the options, the pool, the adopted option
    #: (an open question's adopted answer too).
    options: NotRequired[list[str]]
    pool: NotRequired[Pool]
    choice: NotRequired[str | None]
    #: Open questions only: the clusters of answers.
    clusters: NotRequired[Clusters]
    #: Sealed proposals only: the phase and the commitments.
    sealed: NotRequired[SealedInfo]


class Membership(TypedDict):
    """Where an agent stands on a proposal (``proposal(id, agent=did)``)."""

    agent: str
    #: In the electorate frozen when the proposal entered the log.
    eligible: bool
    proposer: bool
    responded: bool
    stance: str | None
    #: Only when eligible: its authority, trust and influence at entry.
    authority: NotRequired[str]
    trust: NotRequired[str]
    influence: NotRequired[str]


class ProposalDetail(ProposalSummary):
    message: Envelope
    action: Action
    confidence: str
    policy: Policy
    entered_time: int
    electorate: Electorate
    responses: list[ResponseRecord]
    closure: Closure | None
    supersedes: str | None
    superseded_by: str | None
    outcome: OutcomeRecord | None
    #: A belief proposal's own distribution (the proposer's position).
    distribution: NotRequired[dict[str, str]]
    #: Only while open: what the rule would say now; never final.
    leaning: NotRequired[Leaning]
    #: Once escalated (and after human decisions).
    package: NotRequired[DecisionPackage]
    #: Only when asked with ``agent=``.
    member: NotRequired[Membership]
    #: Hierarchy proposals only (PROTOCOL §21): the frozen roles, the
    #: executive's decision and the objections.
    hierarchy: NotRequired[dict[str, Any]]


class ProposalList(TypedDict):
    proposals: list[ProposalSummary]
    #: More proposals match than were returned.
    more: bool


class Escalation(ProposalSummary):
    package: DecisionPackage


class EscalationList(TypedDict):
    escalations: list[Escalation]
    total: int


class Receipt(TypedDict):
    """A message's place in the log and its effects."""

    index: int
    time: int
    effects: list[Effect]


class RegistrationReceipt(Receipt):
    agent: str


class ProposalReceipt(Receipt):
    #: The proposal id.
    id: str
    #: ``open``, or the status it closed with at once.
    status: Status


class ResponseReceipt(Receipt):
    status: Status | None
    tally: Tally | None


class DecisionReceipt(Receipt):
    status: Status


class _Rejected(TypedDict):
    error: str
    message: str


class LogLine(TypedDict):
    """One line of the audit export (PROTOCOL §10.2)."""

    index: int
    time: int
    prev: str
    hash: str
    message: Envelope | None
    effects: list[Effect]
    rejected: NotRequired[_Rejected | None]
