"""The blocking client (httpx)."""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence, cast

import httpx

from . import _base
from ._base import ClientBase, decode, local_ms, params, segment, submit_path
from .errors import SynodError
from .events import EventStream
from .keys import Keypair, new_reviewer_token, reviewer_keypair
from .messages import (
    UNSET,
    configuration_body,
    decision_body,
    grant_change,
    outcome_body,
    proposal_body,
    registration_body,
    response_body,
    belief_response_body,
    answer_body,
    set_change,
)
from .sealed import SealedAnswer, answer_of, commitment, new_salt
from .types import (
    AgentDetail,
    AgentList,
    DecisionReceipt,
    EscalationList,
    Health,
    LogLine,
    ProposalDetail,
    ProposalList,
    ProposalReceipt,
    ProposalSummary,
    Receipt,
    RegistrationReceipt,
    ResponseReceipt,
    SpaceInfo,
)
from .stamp import mint
from .wire import DecimalLike, MessageType, SignedMessage, micros

__all__ = ["Client"]


class Client(ClientBase):
    """A client of one node's HTTP API.

    ``key`` signs every message unless a call passes another ``key=``. The
    space id and the node's clock (for ``created_at``) are read from
    ``GET /v1/space`` on first need. Refusals raise :class:`SynodError`;
    a node that cannot be reached raises ``httpx.TransportError``.

    >>> with Client("http://127.0.0.1:7420", key=Keypair.load_named()) as node:
    ...     node.respond(proposal_id, "endorse", 0.8, "matches the fraud pattern")
    """

    def __init__(
        self,
        base_url: str,
        key: Keypair | None = None,
        *,
        timeout: float = _base.DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, key)
        self.timeout = timeout
        self.http = httpx.Client(
            base_url=self.base_url, timeout=timeout, headers=dict(headers or {}), transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Raw access ------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any request; the decoded JSON answer, or :class:`SynodError`."""
        all_headers = {"content-type": "application/json"} if content is not None else {}
        all_headers.update(headers or {})
        response = self.http.request(method, path, params=dict(query or {}), content=content, headers=all_headers)
        return decode(response)

    def post_bytes(self, path: str, data: bytes, *, headers: Mapping[str, str] | None = None) -> Any:
        """POSTs raw JSON bytes (for messages built by hand)."""
        return self.request("POST", path, content=data, headers=headers)

    def submit(self, message: SignedMessage) -> Any:
        """Posts a signed message to the route for its type."""
        return self.post_bytes(submit_path(message), message.to_bytes())

    # Reads -----------------------------------------------------------------

    def health(self) -> Health:
        """``GET /healthz``. A failed node answers 503, raised as SynodError."""
        response = self.http.get("/healthz")
        value = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        if response.status_code >= 400 and isinstance(value, dict) and "status" in value:
            raise SynodError("unavailable", str(value.get("reason", value["status"])), response.status_code)
        return cast(Health, decode(response))

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        response = self.http.get("/metrics")
        if response.status_code >= 400:
            decode(response)
        return response.text

    def openapi(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self.request("GET", "/openapi.json"))

    def space(self, *, state_hash: bool = False) -> SpaceInfo:
        """``GET /v1/space``: id, configuration, log head and the node's clock."""
        sent = local_ms()
        info = cast(SpaceInfo, self.request("GET", "/v1/space", query=params(state_hash=state_hash or None)))
        self._learn_space(info, sent, local_ms())
        return info

    def agents(self, *, limit: int | None = None, after: int | None = None) -> AgentList:
        """``GET /v1/agents``, in order of admission; ``after`` skips that many."""
        return cast(AgentList, self.request("GET", "/v1/agents", query=params(limit=limit, after=after)))

    def agent(self, did: str | None = None) -> AgentDetail:
        """``GET /v1/agents/{id}`` (default: this client's key)."""
        target = did if did is not None else self._signer(None).did
        return cast(AgentDetail, self.request("GET", f"/v1/agents/{segment(target)}"))

    def proposals(
        self,
        *,
        status: str | None = None,
        domain: str | None = None,
        limit: int | None = None,
        after: int | None = None,
    ) -> ProposalList:
        """``GET /v1/proposals``: ``domain`` is a pattern (``fraud.*``),
        ``after`` a log index (only proposals that entered after it)."""
        return cast(
            ProposalList,
            self.request("GET", "/v1/proposals", query=params(status=status, domain=domain, limit=limit, after=after)),
        )

    def open_proposals(self, domain: str | None = None) -> Iterator[ProposalSummary]:
        """Every open proposal (in ``domain``, a pattern), page by page."""
        after: int | None = None
        while True:
            page = self.proposals(status="open", domain=domain, limit=500, after=after)
            yield from page["proposals"]
            if not page["more"] or not page["proposals"]:
                return
            after = page["proposals"][-1]["entered_index"]

    def proposal(self, proposal_id: str, *, agent: str | None = None) -> ProposalDetail:
        """``GET /v1/proposals/{id}``: responses, tally, leaning, closure,
        outcome, and the decision package once escalated; with ``agent`` (a
        did), also ``member``: where that agent stands (in the electorate
        frozen at entry, its influence, answered or not)."""
        query = {"agent": agent} if agent is not None else None
        path = f"/v1/proposals/{segment(proposal_id)}"
        return cast(ProposalDetail, self.request("GET", path, query=query))

    def round_proposer(self, domain: str) -> dict[str, Any]:
        """``GET /v1/lottery/proposer``: who may propose in the current round
        in ``domain`` (PROTOCOL §20.4), with the round, its anchor, the seed
        and the candidates' stakes, so that the draw can be redone."""
        return cast(dict[str, Any], self.request("GET", "/v1/lottery/proposer", query={"domain": domain}))

    def escalations(self) -> EscalationList:
        """``GET /v1/escalations``: proposals waiting for reviewers."""
        return cast(EscalationList, self.request("GET", "/v1/escalations"))

    def iter_log(self, *, from_index: int = 0, limit: int | None = None) -> Iterator[LogLine]:
        """``GET /v1/log``: the audit export, one line per entry, streamed."""
        with self.http.stream("GET", "/v1/log", params=params(**{"from": from_index, "limit": limit})) as response:
            if response.status_code >= 400:
                response.read()
                decode(response)
            for line in response.iter_lines():
                if line.strip():
                    yield cast(LogLine, json.loads(line))

    def log(self, *, from_index: int = 0, limit: int | None = None) -> list[LogLine]:
        return list(self.iter_log(from_index=from_index, limit=limit))

    def events(
        self,
        *,
        from_index: int | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 45.0,
    ) -> EventStream:
        """``GET /v1/events`` as an iterator of :class:`synod.Event` that
        reconnects after a dropped connection and resumes after the last event
        it yielded (``Last-Event-ID``): nothing missed, nothing repeated.

        Start at log index ``from_index``, after ``last_event_id``, or (neither)
        at the log's head when first connected.
        """
        return EventStream(
            self,
            from_index=from_index,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
            read_timeout=read_timeout,
        )

    # Signing ---------------------------------------------------------------

    def now(self) -> int:
        """The node's clock (ms), estimated from the last ``GET /v1/space``."""
        if self._clock_offset is None:
            self.space()
        return self._node_now()

    def space_id(self) -> str:
        if self._space_id is None:
            self.space()
        assert self._space_id is not None
        return self._space_id

    def sign(
        self,
        kind: MessageType,
        body: Mapping[str, Any],
        *,
        key: Keypair | None = None,
        created_at: int | None = None,
        space: str | None = None,
    ) -> SignedMessage:
        """Signs ``body`` for this node's space, adding ``space`` and
        ``created_at`` (the node's clock unless given)."""
        if self._space_id is None:
            self.space()
        return self._sign_known(kind, body, key, created_at, space)

    def _send_proposal(self, body: dict[str, Any], key: Keypair | None) -> Any:
        """Signs and submits a proposal, first minting the proof-of-work
        stamp the space asks of this key in this domain (PROTOCOL §16): when
        its trust there is below ``admission_trust_below``."""
        info = self.space()
        config = info["config"]
        below = micros(config.get("admission_trust_below", "0"))
        if below > 0:
            signer = self._signer(key)
            try:
                record = self.agent(signer.did)
            except SynodError as e:
                if e.kind != "not_found":
                    raise
            else:
                trust = record["trust"].get(body["domain"], record["trust_prior"])
                if micros(trust) < below:
                    created_at = self._node_now()
                    full = dict(body, space=info["space"], created_at=created_at)
                    body = dict(body, stamp=mint(signer.did, full, int(config["admission_difficulty"])))
                    return self.submit(self.sign("proposal", body, key=key, created_at=created_at))
        return self.submit(self.sign("proposal", body, key=key))

    def _send(self, kind: MessageType, body: Mapping[str, Any], key: Keypair | None) -> Any:
        return self.submit(self.sign(kind, body, key=key))

    # Agents ----------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        vendor: str | None = None,
        model: str | None = None,
        authorities: Mapping[str, DecimalLike] | None = None,
        roles: Sequence[str] = (),
        seq: int | None = None,
        key: Keypair | None = None,
    ) -> RegistrationReceipt:
        """Registers (or updates) the key's agent. Without ``seq``, one above
        the agent's recorded sequence number (1 for an unknown agent)."""
        signer = self._signer(key)
        if seq is None:
            try:
                seq = self.agent(signer.did)["seq"] + 1
            except SynodError as e:
                if e.status != 404:
                    raise
                seq = 1
        body = registration_body(
            seq=seq, name=name, vendor=vendor, model=model, authorities=authorities, roles=roles
        )
        return cast(RegistrationReceipt, self._send("registration", body, signer))

    # Proposals -------------------------------------------------------------

    def propose(
        self,
        domain: str,
        kind: str,
        summary: str,
        confidence: DecimalLike,
        *,
        stakes: str = "medium",
        deadline_ms: int = 600_000,
        deadline: int | None = None,
        payload: Any = UNSET,
        policy: Mapping[str, Any] | None = None,
        supersedes: str | None = None,
        method: str | None = None,
        committee: int | None = None,
        commit_ms: int | None = None,
        key: Keypair | None = None,
    ) -> ProposalReceipt:
        """Proposes an action. ``confidence`` is the proposer's probability
        that the action succeeds, in (0, 1]. The vote closes ``deadline_ms``
        from now, or at log time ``deadline``. ``method="stake"`` asks for
        more than two thirds of the whole electorate's stake; ``committee``
        lets that many members drawn by stake decide a low-stakes proposal
        (PROTOCOL §20). With ``commit_ms`` the answers are sealed
        (PROTOCOL §18): commitments for that long, then reveals (see
        :meth:`commit`). The receipt's ``id`` is the proposal id."""
        now = self.now() if deadline is None or commit_ms is not None else 0
        when = deadline if deadline is not None else now + deadline_ms
        body = proposal_body(
            domain=domain,
            kind=kind,
            summary=summary,
            confidence=confidence,
            stakes=stakes,
            deadline=when,
            payload=payload,
            policy=policy,
            supersedes=supersedes,
            method=method,
            committee=committee,
        )
        if commit_ms is not None:
            body["sealed"] = {"commit_deadline": now + commit_ms}
        return cast(ProposalReceipt, self._send_proposal(body, key))

    def commit(
        self,
        proposal_id: str,
        stance: str | None = None,
        confidence: DecimalLike | None = None,
        reasoning: str = "",
        *,
        distribution: Mapping[str, DecimalLike] | None = None,
        salt: bytes | None = None,
        key: Keypair | None = None,
    ) -> SealedAnswer:
        """Commits to an answer on a sealed proposal during its commit phase
        (PROTOCOL §18): ``stance`` and ``confidence``, or a ``distribution``,
        with its ``reasoning``. Only the commitment is sent; keep the returned
        :class:`SealedAnswer` and pass it to :meth:`reveal` after the commit
        deadline."""
        signer = self._signer(key)
        if distribution is not None:
            body = belief_response_body(proposal=proposal_id, probabilities=distribution, reasoning=reasoning)
        elif stance is not None and confidence is not None:
            body = response_body(proposal=proposal_id, stance=stance, confidence=confidence, reasoning=reasoning)
        else:
            raise ValueError("give stance and confidence, or a distribution")
        raw = salt if salt is not None else new_salt()
        sealed = SealedAnswer(
            proposal=proposal_id,
            body=body,
            salt=raw.hex(),
            commitment=commitment(proposal_id, signer.did, raw, answer_of(body)),
        )
        sealed.receipt = self._send("response", {"proposal": proposal_id, "commitment": sealed.commitment}, signer)
        return sealed

    def reveal(self, sealed: SealedAnswer, *, key: Keypair | None = None) -> ResponseReceipt:
        """Reveals a committed answer after the commit deadline."""
        return cast(ResponseReceipt, self._send("response", sealed.reveal_body(), key))

    def respond(
        self,
        proposal_id: str,
        stance: str,
        confidence: DecimalLike,
        reasoning: str = "",
        *,
        key: Keypair | None = None,
    ) -> ResponseReceipt:
        """Endorses, challenges or abstains. ``confidence`` is the probability
        that the stance is right; ``reasoning`` is kept in the audit log."""
        body = response_body(proposal=proposal_id, stance=stance, confidence=confidence, reasoning=reasoning)
        return cast(ResponseReceipt, self._send("response", body, key))

    def ask(
        self,
        domain: str,
        kind: str,
        summary: str,
        options: Sequence[str],
        *,
        distribution: Mapping[str, DecimalLike] | None = None,
        stakes: str = "medium",
        deadline_ms: int = 600_000,
        deadline: int | None = None,
        payload: Any = UNSET,
        policy: Mapping[str, Any] | None = None,
        supersedes: str | None = None,
        key: Keypair | None = None,
    ) -> ProposalReceipt:
        """Asks a question (belief consensus, PROTOCOL §15): the electorate
        answers with a probability per option, and the pooled distribution
        adopts an option when it is probable enough (the policy's
        ``pool_threshold``), or a human picks. ``distribution`` is the
        proposer's own answer, if it has one."""
        when = deadline if deadline is not None else self.now() + deadline_ms
        body = proposal_body(
            domain=domain,
            kind=kind,
            summary=summary,
            confidence=1,
            stakes=stakes,
            deadline=when,
            payload=payload,
            policy=policy,
            supersedes=supersedes,
            options=options,
            own_distribution=distribution,
        )
        return cast(ProposalReceipt, self._send_proposal(body, key))

    def ask_open(
        self,
        domain: str,
        kind: str,
        summary: str,
        *,
        tolerance: DecimalLike | None = None,
        stakes: str = "medium",
        deadline_ms: int = 600_000,
        payload: Any = UNSET,
        policy: Mapping[str, Any] | None = None,
        key: Keypair | None = None,
    ) -> ProposalReceipt:
        """Asks an open question (PROTOCOL §19): the electorate answers in
        free text; equivalent answers are clustered (numbers within
        ``tolerance`` are one answer) and the heaviest cluster's answer is
        adopted when it holds the policy's ``pool_threshold`` of the weight,
        or a human picks."""
        body = proposal_body(
            domain=domain,
            kind=kind,
            summary=summary,
            confidence=1,
            stakes=stakes,
            deadline=self.now() + deadline_ms,
            payload=payload,
            policy=policy,
            open_question=True,
            open_tolerance=tolerance,
        )
        return cast(ProposalReceipt, self._send_proposal(body, key))

    def answer(
        self,
        proposal_id: str,
        answer: str,
        confidence: DecimalLike,
        reasoning: str = "",
        *,
        key: Keypair | None = None,
    ) -> ResponseReceipt:
        """Answers an open question in free text; ``confidence`` is the
        probability that the answer is right, scored against the outcome's
        answer."""
        body = answer_body(proposal=proposal_id, answer=answer, confidence=confidence, reasoning=reasoning)
        return cast(ResponseReceipt, self._send("response", body, key))

    def believe(
        self,
        proposal_id: str,
        distribution: Mapping[str, DecimalLike],
        reasoning: str = "",
        *,
        key: Keypair | None = None,
    ) -> ResponseReceipt:
        """Answers a question (a belief proposal) with a probability per
        option, summing to exactly 1. It is scored against the option that
        turns out right: state what you believe, and give 0 only to what you
        rule out (a 0 counts as the pool's floor, 0.01 by default)."""
        body = belief_response_body(proposal=proposal_id, probabilities=distribution, reasoning=reasoning)
        return cast(ResponseReceipt, self._send("response", body, key))

    def report_outcome(
        self,
        proposal_id: str,
        *,
        result: str | None = None,
        score: DecimalLike | None = None,
        option: str | None = None,
        answer: str | None = None,
        key: Keypair | None = None,
    ) -> Receipt:
        """Reports how a decided action turned out (an oracle or reviewer that
        took no part): ``result="success"|"failure"`` or a graded ``score``;
        for a question, the ``option`` that turned out right; for an open
        question, the ``answer``."""
        body = outcome_body(proposal=proposal_id, result=result, score=score, option=option, answer=answer)
        return cast(Receipt, self._send("outcome", body, key))

    def decide(
        self,
        proposal_id: str,
        decision: str,
        note: str = "",
        *,
        option: str | None = None,
        answer: str | None = None,
        reviewer_token: str | None = None,
        key: Keypair | None = None,
    ) -> DecisionReceipt:
        """A reviewer's ``approve`` or ``reject`` of an escalated proposal,
        either with a reviewer token (``Authorization: Bearer``; the node
        signs as the token's reviewer) or as a message signed by ``key``.
        Approving a question names the ``option`` it adopts."""
        path = f"/v1/escalations/{segment(proposal_id)}/decisions"
        if reviewer_token is not None:
            request: dict[str, Any] = {"decision": decision, "note": note}
            if option is not None:
                request["option"] = option
            if answer is not None:
                request["answer"] = answer
            data = json.dumps(request).encode()
            return cast(
                DecisionReceipt,
                self.post_bytes(path, data, headers={"authorization": f"Bearer {reviewer_token}"}),
            )
        body = decision_body(proposal=proposal_id, decision=decision, note=note, option=option, answer=answer)
        return cast(DecisionReceipt, self._send("decision", body, key))

    # Administration --------------------------------------------------------

    def configure(self, change: Mapping[str, Any], *, key: Keypair | None = None) -> Receipt:
        """An admin's configuration change with the next sequence number,
        retried if another admin took it first."""
        for attempt in range(_base.CONFIG_ATTEMPTS):
            seq = self.space()["config_seq"] + 1
            try:
                return cast(Receipt, self._send("configuration", configuration_body(seq=seq, change=change), key))
            except SynodError as e:
                if e.kind != "duplicate" or attempt == _base.CONFIG_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def set_config(self, *, key: Keypair | None = None, **patch: Any) -> Receipt:
        """Sets configuration fields: ``set_config(mode="open")``."""
        return self.configure(set_change(**patch), key=key)

    def grant(
        self,
        agent: str,
        *,
        authorities: Mapping[str, DecimalLike] | None = None,
        roles: Sequence[str] = (),
        stake: int | None = None,
        key: Keypair | None = None,
    ) -> Receipt:
        """Grants (replacing earlier grants) authorities, roles and a stake
        in whole units (PROTOCOL §20.1); admits an agent to a closed space."""
        return self.configure(grant_change(agent, authorities=authorities, roles=roles, stake=stake), key=key)

    def add_reviewer(self, name: str, *, key: Keypair | None = None) -> tuple[str, str]:
        """As ``synod reviewer add``: a new reviewer token, the reviewer role
        granted (by the admin ``key``) to the key it stands for, and that key
        registered. Returns ``(token, did)``."""
        token = new_reviewer_token()
        reviewer = reviewer_keypair(token)
        self.grant(reviewer.did, roles=["reviewer"], key=key)
        self.register(name, roles=["reviewer"], seq=1, key=reviewer)
        return token, reviewer.did
