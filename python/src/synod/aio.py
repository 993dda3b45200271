"""The async client (httpx); the same calls as :class:`synod.Client`, awaited."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Mapping, Sequence, cast

import httpx

from . import _base
from ._base import ClientBase, decode, local_ms, params, segment, submit_path
from .errors import SynodError
from .events import AsyncEventStream
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

__all__ = ["AsyncClient"]


class AsyncClient(ClientBase):
    """An async client of one node's HTTP API (see :class:`synod.Client`).

    ``key`` signs every message unless a call passes another ``key=``. The
    space id and the node's clock (for ``created_at``) are read from
    ``GET /v1/space`` on first need. Refusals raise :class:`SynodError`;
    a node that cannot be reached raises ``httpx.TransportError``.

    >>> async with AsyncClient("http://127.0.0.1:7420", key=key) as node:
    ...     await node.respond(proposal_id, "endorse", 0.8, "matches the fraud pattern")
    """

    def __init__(
        self,
        base_url: str,
        key: Keypair | None = None,
        *,
        timeout: float = _base.DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, key)
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=dict(headers or {}), transport=transport
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Raw access ------------------------------------------------------------

    async def request(
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
        response = await self.http.request(method, path, params=dict(query or {}), content=content, headers=all_headers)
        return decode(response)

    async def post_bytes(self, path: str, data: bytes, *, headers: Mapping[str, str] | None = None) -> Any:
        """POSTs raw JSON bytes (for messages built by hand)."""
        return await self.request("POST", path, content=data, headers=headers)

    async def submit(self, message: SignedMessage) -> Any:
        """Posts a signed message to the route for its type."""
        return await self.post_bytes(submit_path(message), message.to_bytes())

    # Reads -----------------------------------------------------------------

    async def health(self) -> Health:
        """``GET /healthz``. A failed node answers 503, raised as SynodError."""
        response = await self.http.get("/healthz")
        value = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        if response.status_code >= 400 and isinstance(value, dict) and "status" in value:
            raise SynodError("unavailable", str(value.get("reason", value["status"])), response.status_code)
        return cast(Health, decode(response))

    async def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        response = await self.http.get("/metrics")
        if response.status_code >= 400:
            decode(response)
        return response.text

    async def openapi(self) -> dict[str, Any]:
        return cast("dict[str, Any]", await self.request("GET", "/openapi.json"))

    async def space(self, *, state_hash: bool = False) -> SpaceInfo:
        """``GET /v1/space``: id, configuration, log head and the node's clock."""
        sent = local_ms()
        info = cast(SpaceInfo, await self.request("GET", "/v1/space", query=params(state_hash=state_hash or None)))
        self._learn_space(info, sent, local_ms())
        return info

    async def agents(self, *, limit: int | None = None, after: int | None = None) -> AgentList:
        """``GET /v1/agents``, in order of admission; ``after`` skips that many."""
        return cast(AgentList, await self.request("GET", "/v1/agents", query=params(limit=limit, after=after)))

    async def agent(self, did: str | None = None) -> AgentDetail:
        """``GET /v1/agents/{id}`` (default: this client's key)."""
        target = did if did is not None else self._signer(None).did
        return cast(AgentDetail, await self.request("GET", f"/v1/agents/{segment(target)}"))

    async def proposals(
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
            await self.request("GET", "/v1/proposals", query=params(status=status, domain=domain, limit=limit, after=after)),
        )

    async def open_proposals(self, domain: str | None = None) -> AsyncIterator[ProposalSummary]:
        """Every open proposal (in ``domain``, a pattern), page by page."""
        after: int | None = None
        while True:
            page = await self.proposals(status="open", domain=domain, limit=500, after=after)
            for item in page["proposals"]:
                yield item
            if not page["more"] or not page["proposals"]:
                return
            after = page["proposals"][-1]["entered_index"]

    async def proposal(self, proposal_id: str, *, agent: str | None = None) -> ProposalDetail:
        """``GET /v1/proposals/{id}``: responses, tally, leaning, closure,
        outcome, and the decision package once escalated; with ``agent`` (a
        did), also ``member``: where that agent stands (in the electorate
        frozen at entry, its influence, answered or not)."""
        query = {"agent": agent} if agent is not None else None
        path = f"/v1/proposals/{segment(proposal_id)}"
        return cast(ProposalDetail, await self.request("GET", path, query=query))

    async def round_proposer(self, domain: str) -> dict[str, Any]:
        """``GET /v1/lottery/proposer``: who may propose in the current round
        in ``domain`` (PROTOCOL §20.4), with the round, its anchor, the seed
        and the candidates' stakes, so that the draw can be redone."""
        return cast(dict[str, Any], await self.request("GET", "/v1/lottery/proposer", query={"domain": domain}))

    async def escalations(self) -> EscalationList:
        """``GET /v1/escalations``: proposals waiting for reviewers."""
        return cast(EscalationList, await self.request("GET", "/v1/escalations"))

    async def iter_log(self, *, from_index: int = 0, limit: int | None = None) -> AsyncIterator[LogLine]:
        """``GET /v1/log``: the audit export, one line per entry, streamed."""
        async with self.http.stream("GET", "/v1/log", params=params(**{"from": from_index, "limit": limit})) as response:
            if response.status_code >= 400:
                await response.aread()
                decode(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield cast(LogLine, json.loads(line))

    async def log(self, *, from_index: int = 0, limit: int | None = None) -> list[LogLine]:
        return [line async for line in self.iter_log(from_index=from_index, limit=limit)]

    def events(
        self,
        *,
        from_index: int | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_reconnects: int | None = None,
        read_timeout: float = 45.0,
    ) -> AsyncEventStream:
        """``GET /v1/events`` as an async iterator of :class:`synod.Event` that
        reconnects after a dropped connection and resumes after the last event
        it yielded (``Last-Event-ID``): nothing missed, nothing repeated.

        Start at log index ``from_index``, after ``last_event_id``, or (neither)
        at the log's head when first connected.
        """
        return AsyncEventStream(
            self,
            from_index=from_index,
            last_event_id=last_event_id,
            reconnect=reconnect,
            max_reconnects=max_reconnects,
            read_timeout=read_timeout,
        )

    # Signing ---------------------------------------------------------------

    async def now(self) -> int:
        """The node's clock (ms), estimated from the last ``GET /v1/space``."""
        if self._clock_offset is None:
            await self.space()
        return self._node_now()

    async def space_id(self) -> str:
        if self._space_id is None:
            await self.space()
        assert self._space_id is not None
        return self._space_id

    async def sign(
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
            await self.space()
        return self._sign_known(kind, body, key, created_at, space)

    async def _send_proposal(self, body: dict[str, Any], key: Keypair | None) -> Any:
        """Signs and submits a proposal, first minting the proof-of-work
        stamp the space asks of this key in this domain (PROTOCOL §16): when
        its trust there is below ``admission_trust_below``."""
        info = await self.space()
        config = info["config"]
        below = micros(config.get("admission_trust_below", "0"))
        if below > 0:
            signer = self._signer(key)
            try:
                record = await self.agent(signer.did)
            except SynodError as e:
                if e.kind != "not_found":
                    raise
            else:
                trust = record["trust"].get(body["domain"], record["trust_prior"])
                if micros(trust) < below:
                    created_at = self._node_now()
                    full = dict(body, space=info["space"], created_at=created_at)
                    # Minting takes a second or so at the default difficulty:
                    # off the event loop.
                    nonce = await asyncio.to_thread(mint, signer.did, full, int(config["admission_difficulty"]))
                    body = dict(body, stamp=nonce)
                    return await self.submit(await self.sign("proposal", body, key=key, created_at=created_at))
        return await self.submit(await self.sign("proposal", body, key=key))

    async def _send(self, kind: MessageType, body: Mapping[str, Any], key: Keypair | None) -> Any:
        return await self.submit(await self.sign(kind, body, key=key))

    # Agents ----------------------------------------------------------------

    async def register(
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
                seq = (await self.agent(signer.did))["seq"] + 1
            except SynodError as e:
                if e.status != 404:
                    raise
                seq = 1
        body = registration_body(
            seq=seq, name=name, vendor=vendor, model=model, authorities=authorities, roles=roles
        )
        return cast(RegistrationReceipt, await self._send("registration", body, signer))

    # Proposals -------------------------------------------------------------

    async def propose(
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
        now = await self.now() if deadline is None or commit_ms is not None else 0
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
        return cast(ProposalReceipt, await self._send_proposal(body, key))

    async def commit(
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
        sealed.receipt = await self._send("response", {"proposal": proposal_id, "commitment": sealed.commitment}, signer)
        return sealed

    async def reveal(self, sealed: SealedAnswer, *, key: Keypair | None = None) -> ResponseReceipt:
        """Reveals a committed answer after the commit deadline."""
        return cast(ResponseReceipt, await self._send("response", sealed.reveal_body(), key))

    async def respond(
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
        return cast(ResponseReceipt, await self._send("response", body, key))

    async def ask(
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
        when = deadline if deadline is not None else await self.now() + deadline_ms
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
        return cast(ProposalReceipt, await self._send_proposal(body, key))

    async def ask_open(
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
            deadline=await self.now() + deadline_ms,
            payload=payload,
            policy=policy,
            open_question=True,
            open_tolerance=tolerance,
        )
        return cast(ProposalReceipt, await self._send_proposal(body, key))

    async def answer(
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
        return cast(ResponseReceipt, await self._send("response", body, key))

    async def believe(
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
        return cast(ResponseReceipt, await self._send("response", body, key))

    async def report_outcome(
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
        return cast(Receipt, await self._send("outcome", body, key))

    async def decide(
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
                await self.post_bytes(path, data, headers={"authorization": f"Bearer {reviewer_token}"}),
            )
        body = decision_body(proposal=proposal_id, decision=decision, note=note, option=option, answer=answer)
        return cast(DecisionReceipt, await self._send("decision", body, key))

    # Administration --------------------------------------------------------

    async def configure(self, change: Mapping[str, Any], *, key: Keypair | None = None) -> Receipt:
        """An admin's configuration change with the next sequence number,
        retried if another admin took it first."""
        for attempt in range(_base.CONFIG_ATTEMPTS):
            seq = (await self.space())["config_seq"] + 1
            try:
                return cast(Receipt, await self._send("configuration", configuration_body(seq=seq, change=change), key))
            except SynodError as e:
                if e.kind != "duplicate" or attempt == _base.CONFIG_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def set_config(self, *, key: Keypair | None = None, **patch: Any) -> Receipt:
        """Sets configuration fields: ``set_config(mode="open")``."""
        return await self.configure(set_change(**patch), key=key)

    async def grant(
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
        return await self.configure(grant_change(agent, authorities=authorities, roles=roles, stake=stake), key=key)

    async def add_reviewer(self, name: str, *, key: Keypair | None = None) -> tuple[str, str]:
        """As ``synod reviewer add``: a new reviewer token, the reviewer role
        granted (by the admin ``key``) to the key it stands for, and that key
        registered. Returns ``(token, did)``."""
        token = new_reviewer_token()
        reviewer = reviewer_keypair(token)
        await self.grant(reviewer.did, roles=["reviewer"], key=key)
        await self.register(name, roles=["reviewer"], seq=1, key=reviewer)
        return token, reviewer.did
